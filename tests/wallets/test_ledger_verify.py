from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from payments.models import PaymentKind, PaymentMethodType
from tests.wallets.conftest import fund, verify
from wallets.models import Account, Entry, Posting
from wallets.verify import CHECKS
from wallets.withdrawals import withdrawal_request


def _raw(sql: str, params: list) -> None:
    """Writes behind the ledger's back, with the immutability trigger switched off."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_ledger_verify_when_ledger_sound_then_exit_0_with_report(customer, merchant):
    fund(customer, 5_000)
    fund(merchant, 7_000)
    withdrawal_request(user=customer, amount=1_000)
    code, out = verify()
    assert code == 0, out
    assert "Ledger OK" in out
    assert "3 entries, 6 postings" in out


def test_ledger_verify_when_empty_ledger_then_exit_0(db):
    assert verify()[0] == 0


def test_ledger_verify_when_posting_amount_altered_then_exit_1_naming_entry(customer):
    entry = fund(customer, 5_000)
    posting = Posting.objects.get(entry=entry, account__owner=customer)
    _raw(f"UPDATE {Posting._meta.db_table} SET amount = amount + 1 WHERE id = %s", [posting.pk])
    code, out = verify()
    assert code == 1
    assert f"entry {entry.pk}: postings sum to 1" in out
    assert f"account {posting.account_id}" in out  # the balance no longer matches either


def test_ledger_verify_when_balance_column_altered_then_exit_1_naming_account(customer):
    fund(customer, 5_000)
    account = Account.objects.get(owner=customer)
    Account.objects.filter(pk=account.pk).update(balance=6_000)
    code, out = verify()
    assert code == 1
    assert f"first: account {account.pk}: balance 6000, postings sum to 5000" in out


def test_ledger_verify_when_held_drifts_from_withdrawals_then_exit_1(customer):
    fund(customer, 5_000)
    withdrawal_request(user=customer, amount=1_000)
    account = Account.objects.get(owner=customer)
    Account.objects.filter(pk=account.pk).update(held=1_500)
    code, out = verify()
    assert code == 1
    assert f"account {account.pk}: held 1500, pending withdrawals 1000" in out


def test_ledger_verify_when_posting_moved_to_other_currency_account_then_exit_1(customer):
    entry = fund(customer, 5_000)
    from wallets.ledger import platform_account_id, platform_accounts_ensure

    with transaction.atomic():
        platform_accounts_ensure("eur")
    posting = Posting.objects.get(entry=entry, account__owner__isnull=True)
    _raw(
        f"UPDATE {Posting._meta.db_table} SET account_id = %s WHERE id = %s",
        [platform_account_id("adjustments", "eur"), posting.pk],
    )
    code, out = verify()
    assert code == 1
    assert f"posting {posting.pk}" in out


def test_ledger_trigger_when_update_or_delete_then_refused(customer):
    entry = fund(customer, 5_000)
    for sql in (
        f"UPDATE {Posting._meta.db_table} SET amount = amount + 1 WHERE entry_id = %s",
        f"DELETE FROM {Posting._meta.db_table} WHERE entry_id = %s",
        f"UPDATE {Entry._meta.db_table} SET memo = 'edited' WHERE id = %s",
        f"DELETE FROM {Entry._meta.db_table} WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="ledger rows are immutable"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry.pk])
    assert Posting.objects.filter(entry=entry).count() == 2
    assert verify()[0] == 0


def test_ledger_rows_when_changed_through_orm_then_refused(customer):
    entry = fund(customer, 5_000)
    with pytest.raises(TypeError):
        Entry.objects.filter(pk=entry.pk).update(memo="edited")
    with pytest.raises(TypeError):
        Posting.objects.filter(entry=entry).delete()
    posting = Posting.objects.filter(entry=entry).first()
    assert posting is not None
    posting.amount = 1
    with pytest.raises(TypeError):
        posting.save()


def test_ledger_verify_when_dispute_holds_wallet_funds_then_held_accounted(customer):
    from payments.services.charges import payment_create
    from payments.services.disputes import dispute_open, dispute_resolve

    fund(customer, 5_000)
    with transaction.atomic():
        payment = payment_create(
            user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=2_000, currency="usd"
        )
    dispute = dispute_open(payment_id=payment.pk, stripe_dispute_id="dp_test_1", amount=2_000)
    account = Account.objects.get(owner=customer)
    assert (account.balance, account.held) == (3_000, 2_000)
    code, out = verify()
    assert code == 0, out
    Account.objects.filter(pk=account.pk).update(held=0)
    code, out = verify()
    assert code == 1 and f"account {account.pk}: held 0, pending withdrawals 0 + open disputes 2000" in out
    Account.objects.filter(pk=account.pk).update(held=2_000)
    dispute_resolve(dispute_id=dispute.pk, outcome="won", actor=None)
    code, out = verify()
    assert code == 0, out


def test_ledger_verify_when_wallet_posting_balance_after_negative_then_exit_1_naming_posting(customer):
    entry = fund(customer, 5_000)
    posting = Posting.objects.get(entry=entry, account__owner=customer)
    _raw(f"UPDATE {Posting._meta.db_table} SET balance_after = -1 WHERE id = %s", [posting.pk])
    code, out = verify()
    assert code == 1
    assert f"account {posting.account_id}: posting {posting.pk} has balance_after -1" in out
    assert "  ok    every entry's postings sum to zero" in out  # only the broken invariant fails


def test_ledger_verify_when_several_broken_then_every_check_listed_in_order_and_first_named(customer, merchant):
    fund(customer, 5_000)
    merchant_entry = fund(merchant, 7_000)
    posting = Posting.objects.get(entry=merchant_entry, account__owner=merchant)
    _raw(f"UPDATE {Posting._meta.db_table} SET amount = amount - 2 WHERE id = %s", [posting.pk])
    account = Account.objects.get(owner=customer)
    Account.objects.filter(pk=account.pk).update(held=300)
    code, out = verify()
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith(("  ok ", "  FAIL "))]
    assert [line.split(None, 1)[1].split(":")[0].split(" (")[0] for line in lines] == [c.name for c in CHECKS]
    assert [line.split()[0] for line in lines] == ["FAIL", "ok", "FAIL", "ok", "ok", "FAIL", "ok", "ok", "ok"]
    assert "Ledger broken (3 of 9 checks failed" in out
    assert out.rstrip().endswith(f"first: entry {merchant_entry.pk}: postings sum to -2")


def test_ledger_verify_when_progress_always_then_bar_on_stderr_and_lines_on_stdout(customer):
    from io import StringIO

    from django.core.management import call_command

    fund(customer, 5_000)
    out, err = StringIO(), StringIO()
    call_command("ledger_verify", "--progress", "always", stdout=out, stderr=err)
    assert "ledger_verify: 100%" in err.getvalue() and f"{len(CHECKS)}/{len(CHECKS)}" in err.getvalue()
    assert out.getvalue().count("  ok    ") == len(CHECKS)
    assert "Ledger OK: 9 checks passed" in out.getvalue()
