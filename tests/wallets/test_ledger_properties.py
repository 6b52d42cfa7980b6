"""Property: any sequence of ledger operations keeps every invariant ledger_verify proves."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import InsufficientFunds, InvalidStatus, LimitExceeded
from payments.locks import lock_payment
from tests.backoffice.conftest import user_in_role
from tests.factories import CustomerFactory, MerchantFactory
from tests.wallets.conftest import verify
from wallets.deposits import deposit_create, deposit_on_payment_changed
from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Account, Deposit, Withdrawal
from wallets.withdrawals import withdrawal_approve, withdrawal_reject, withdrawal_request

USERS = 3
amounts = st.integers(min_value=1, max_value=20_000)
operations = st.one_of(
    st.tuples(st.just("fund"), st.integers(0, USERS - 1), amounts),
    st.tuples(st.just("debit"), st.integers(0, USERS - 1), amounts),
    st.tuples(st.just("withdraw"), st.integers(0, USERS - 1), amounts),
    st.tuples(st.just("approve"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("reject"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("deposit"), st.integers(0, USERS - 1), st.integers(100, 20_000)),
    st.tuples(
        st.just("payment_event"), st.integers(0, 20), st.sampled_from(["succeeded", "failed", "canceled", "processing"])
    ),
)


class Rollback(Exception):
    pass


@pytest.fixture
def pending_charges(monkeypatch):
    """Card charges that stay pending: the outcome comes later, as a payment event."""
    monkeypatch.setattr("wallets.deposits.card_payment_confirm", lambda **kwargs: None, raising=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operations, max_size=25))
def test_ledger_when_random_operations_then_invariants_hold(db, pending_charges, steps):
    try:
        with transaction.atomic():
            _run(steps)
            raise Rollback  # every example starts from an empty ledger
    except Rollback:
        pass


def _run(steps: list[tuple[str, int, int | str]]) -> None:
    users = [CustomerFactory.create(), MerchantFactory.create(), CustomerFactory.create()]
    finance = user_in_role("finance")  # withdrawals are decided by Finance staff, with a reason
    wallets = [wallet_id_for(user_id=user.pk, role=user.role) for user in users]
    balance = [0] * USERS
    held = [0] * USERS
    withdrawals: list[tuple[str, int, int]] = []  # (id, user index, amount)
    deposits: list[tuple[Deposit, int]] = []
    credited: set[str] = set()

    for op, index, value in steps:
        # A payment event carries a status; every other operation an amount.
        amount = value if isinstance(value, int) else 0
        status = value if isinstance(value, str) else ""
        if op == "fund":
            wallet_adjust(account_id=wallets[index], amount=amount, reason="property", actor=None)
            balance[index] += amount
        elif op == "debit":
            try:
                wallet_adjust(account_id=wallets[index], amount=-amount, reason="property", actor=None)
                balance[index] -= amount
            except InsufficientFunds:
                assert balance[index] < amount
        elif op == "withdraw":
            try:
                withdrawal = withdrawal_request(user=users[index], amount=amount)
                balance[index] -= amount
                held[index] += amount
                withdrawals.append((withdrawal.pk, index, amount))
            except LimitExceeded:
                assert amount < 500
            except InsufficientFunds:
                assert balance[index] < amount
        elif op in ("approve", "reject") and withdrawals:
            withdrawal_id, owner, amount = withdrawals[index % len(withdrawals)]
            pending = Withdrawal.objects.get(pk=withdrawal_id).status == "pending"
            try:
                if op == "approve":
                    withdrawal_approve(withdrawal_id=withdrawal_id, actor=finance, reason="property")
                else:
                    withdrawal_reject(withdrawal_id=withdrawal_id, actor=finance, reason="property")
                    balance[owner] += amount
                held[owner] -= amount
                assert pending
            except InvalidStatus:
                assert not pending
        elif op == "deposit":
            deposits.append((deposit_create(user=users[index], amount=amount, payment_method_id="pm_x"), index))
        elif op == "payment_event" and deposits:
            deposit, owner = deposits[index % len(deposits)]
            with transaction.atomic():
                assert deposit.payment_id is not None
                payment = lock_payment(deposit.payment_id)
                payment.status = status
                payment.save(update_fields=["status"])
                deposit_on_payment_changed(payment=payment)
            if status == "succeeded" and deposit.pk not in credited:
                credited.add(deposit.pk)
                balance[owner] += deposit.amount

        for i, wallet_id in enumerate(wallets):
            account = Account.objects.get(pk=wallet_id)
            assert (account.balance, account.held) == (balance[i], held[i])
            assert account.balance >= 0 and account.held >= 0
    code, out = verify()
    assert code == 0, out
