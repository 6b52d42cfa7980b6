"""ledger_post_statement: ledger_post as CTEs of one PostgreSQL statement (the wallet purchase's form)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from config.errors import InsufficientFunds
from tests.factories import CustomerFactory, MerchantFactory
from tests.wallets.conftest import fund, verify
from wallets.errors import LedgerError
from wallets.ledger import (
    LedgerStatement,
    Leg,
    ledger_post_statement,
    ledger_refusal,
    platform_account_id,
    wallet_id_for,
)
from wallets.models import Account, AccountKind, Entry, Posting


def _run(statement: LedgerStatement, *, gate: bool = True) -> int:
    """Runs the parts behind a one-row (or empty) gate CTE; the number of rows the last wallet returned."""
    gate_sql = "SELECT 1 WHERE %s"
    sql = (
        f"WITH gate AS ({gate_sql}), "
        + ", ".join(statement.ctes)
        + f" SELECT (SELECT count(*) FROM {statement.last_wallet})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [gate, *statement.params])
        return int(cursor.fetchone()[0])


def _wallets() -> tuple[str, str, str]:
    buyer, merchant = CustomerFactory.create(), MerchantFactory.create()
    fund(buyer, 1_000)
    fees = platform_account_id(AccountKind.PLATFORM_FEES, "usd")
    return (
        wallet_id_for(user_id=buyer.pk, role=buyer.role),
        wallet_id_for(user_id=merchant.pk, role=merchant.role),
        fees,
    )


def _statement(legs: list[Leg], key: str = "test:1") -> LedgerStatement:
    return ledger_post_statement(
        kind="purchase", currency="usd", reference="ord_x", idempotency_key=key, legs=legs, after="gate",
        now=timezone.now(),
    )  # fmt: skip


def test_ledger_statement_when_gate_has_a_row_then_posts_like_ledger_post(db):
    buyer, merchant, fees = _wallets()
    statement = _statement([Leg(buyer, -600), Leg(merchant, 570), Leg(fees, 30)])
    with transaction.atomic():
        assert _run(statement) == 1

    assert Account.objects.get(pk=buyer).balance == 400
    assert Account.objects.get(pk=merchant).balance == 570
    entry = Entry.objects.get(idempotency_key="test:1")
    assert entry.pk == statement.entry.pk
    postings = {p.account_id: (p.amount, p.balance_after) for p in Posting.objects.filter(entry=entry)}
    assert postings == {buyer: (-600, 400), merchant: (570, 570), fees: (30, None)}
    assert verify()[0] == 0


def test_ledger_statement_when_gate_is_empty_then_no_wallet_moves(db):
    buyer, merchant, fees = _wallets()
    statement = _statement([Leg(buyer, -600), Leg(merchant, 570), Leg(fees, 30)])
    with transaction.atomic():
        assert _run(statement, gate=False) == 0
        transaction.set_rollback(True)
    assert Account.objects.get(pk=buyer).balance == 1_000
    assert Account.objects.get(pk=merchant).balance == 0


def test_ledger_statement_when_wallet_short_then_nothing_moves_and_refusal_is_insufficient_funds(db):
    buyer, merchant, _fees = _wallets()
    statement = _statement([Leg(buyer, -1_001), Leg(merchant, 1_001)])
    with transaction.atomic():
        assert _run(statement) == 0
        refusal = ledger_refusal(statement)
        transaction.set_rollback(True)
    assert isinstance(refusal, InsufficientFunds)
    assert refusal.message == "Wallet balance 1000 is less than 1001."
    assert Account.objects.get(pk=merchant).balance == 0


def test_ledger_statement_when_wallet_in_other_currency_then_ledger_error(db):
    buyer, merchant, _fees = _wallets()
    Account.objects.filter(pk=merchant).update(currency="eur")
    statement = _statement([Leg(buyer, -100), Leg(merchant, 100)])
    with transaction.atomic():
        assert _run(statement) == 0
        refusal = ledger_refusal(statement)
        transaction.set_rollback(True)
    assert isinstance(refusal, LedgerError)
    assert Account.objects.get(pk=buyer).balance == 1_000


def test_ledger_statement_when_hold_then_held_moves_with_the_balance(db):
    buyer, _, _ = _wallets()
    in_flight = platform_account_id(AccountKind.WITHDRAWALS_IN_FLIGHT, "usd")
    with transaction.atomic():
        assert _run(_statement([Leg(buyer, -300, held=300), Leg(in_flight, 300)])) == 1
    account = Account.objects.get(pk=buyer)
    assert (account.balance, account.held) == (700, 300)


@pytest.mark.parametrize(
    "legs",
    [
        [Leg("acc_a", -1), Leg("acc_b", 2)],  # does not balance
        [Leg("acc_a", 0), Leg("acc_b", 0)],  # moves nothing
    ],
)
def test_ledger_statement_when_entry_malformed_then_ledger_error(db, legs):
    with pytest.raises(LedgerError):
        _statement(legs)


def test_ledger_statement_when_platform_leg_holds_then_ledger_error(db):
    fees = platform_account_id(AccountKind.PLATFORM_FEES, "usd")
    with pytest.raises(LedgerError):
        _statement([Leg("acc_a", -5), Leg(fees, 5, held=5)])
