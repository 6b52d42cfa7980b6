"""Many threads moving money in and out of the same wallets at once, on real PostgreSQL."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection, transaction

from config.errors import InsufficientFunds, InvalidStatus
from payments.locks import lock_payment
from payments.models import Payment
from tests.backoffice.conftest import user_in_role
from tests.factories import CustomerFactory, MerchantFactory
from tests.wallets.conftest import fund, verify
from wallets.deposits import deposit_create, deposit_on_payment_changed
from wallets.models import Account, Deposit, Entry, Withdrawal
from wallets.withdrawals import withdrawal_approve, withdrawal_reject, withdrawal_request

pytestmark = [pytest.mark.django_db(transaction=True)]

THREADS = 12
OPERATIONS = 25
INITIAL = 20_000


def _succeed(payment_id: str) -> None:
    """A charge's success as the payments app records it: under the payment lock, then the hook."""
    with transaction.atomic():
        payment = lock_payment(payment_id)
        payment.status = "succeeded"
        payment.save(update_fields=["status"])
        deposit_on_payment_changed(payment=payment)


def test_wallets_when_many_threads_deposit_and_withdraw_then_no_update_lost(monkeypatch):
    # Deposits charge "synchronously" and the same success is delivered again by a racing "webhook".
    monkeypatch.setattr(
        "wallets.deposits.card_payment_confirm",
        lambda *, payment_id, payment_method_id: _succeed(payment_id),
        raising=False,
    )
    users = [CustomerFactory.create(), CustomerFactory.create(), MerchantFactory.create()]
    approver = user_in_role("finance")
    for user in users:
        fund(user, INITIAL)
    start = threading.Barrier(THREADS)
    lock = threading.Lock()
    errors: list[BaseException] = []
    refused = [0]
    deposit_payments: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(OPERATIONS):
                user = rng.choice(users)
                roll = rng.random()
                if roll < 0.45:
                    try:
                        withdrawal_request(user=user, amount=rng.randint(500, 4_000))
                    except InsufficientFunds:
                        with lock:
                            refused[0] += 1
                elif roll < 0.75:
                    deposit = deposit_create(user=user, amount=rng.randint(100, 3_000), payment_method_id="pm_x")
                    assert deposit.payment_id is not None
                    with lock:
                        deposit_payments.append(deposit.payment_id)
                elif roll < 0.85:
                    with lock:
                        payment_id = rng.choice(deposit_payments) if deposit_payments else None
                    if payment_id:
                        _succeed(payment_id)  # a duplicate delivery
                else:
                    pending = list(Withdrawal.objects.filter(status="pending").values_list("pk", flat=True)[:5])
                    if pending:
                        try:
                            if rng.random() < 0.5:
                                withdrawal_approve(withdrawal_id=rng.choice(pending), actor=approver, reason="load")
                            else:
                                withdrawal_reject(withdrawal_id=rng.choice(pending), actor=approver, reason="load")
                        except InvalidStatus:
                            pass  # another thread decided it first
        except BaseException as exc:  # noqa: BLE001  # whatever stops a thread is re-raised in the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "a worker hung (deadlock?)"
    assert not errors, errors

    assert Deposit.objects.filter(status="succeeded").count() == Payment.objects.filter(kind="deposit").count()
    assert Entry.objects.filter(kind="deposit").count() == Deposit.objects.count()
    for user in users:
        account = Account.objects.get(owner=user)
        deposited = sum(Deposit.objects.filter(user=user).values_list("amount", flat=True))
        withdrawals = Withdrawal.objects.filter(user=user)
        paid = sum(w.amount for w in withdrawals if w.status == "paid")
        pending = sum(w.amount for w in withdrawals if w.status == "pending")
        assert account.balance >= 0
        assert account.balance == INITIAL + deposited - paid - pending, user
        assert account.held == pending
    assert Withdrawal.objects.count() > 0 and Deposit.objects.count() > 0
    code, out = verify()
    assert code == 0, out


def _run_threads(count: int, target) -> list[BaseException]:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def wrapped(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:  # noqa: BLE001  # whatever stops a thread is re-raised in the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung (deadlock?)"
    return errors


def test_withdrawals_when_many_requests_race_for_one_balance_then_never_overdrawn():
    from tests.conftest import client_for

    customer = CustomerFactory.create()
    fund(customer, 10_000)
    statuses: list[int] = []

    def withdraw(_: int) -> None:
        response = client_for(customer).post("/api/v1/wallet/withdrawals", {"amount": 1_000}, format="json")
        statuses.append(response.status_code)

    assert not _run_threads(16, withdraw)
    assert sorted(statuses) == [201] * 10 + [402] * 6
    account = Account.objects.get(owner=customer)
    assert (account.balance, account.held) == (0, 10_000)
    assert Withdrawal.objects.filter(status="pending").count() == 10
    code, out = verify()
    assert code == 0, out


def test_withdrawal_when_staff_decide_it_at_once_then_exactly_one_decision():
    customer = CustomerFactory.create()
    fund(customer, 5_000)
    withdrawal = withdrawal_request(user=customer, amount=2_000)
    approver = user_in_role("finance")
    outcomes: list[str] = []

    def decide(index: int) -> None:
        try:
            if index % 2:
                withdrawal_approve(withdrawal_id=withdrawal.pk, actor=approver, reason="race")
                outcomes.append("paid")
            else:
                withdrawal_reject(withdrawal_id=withdrawal.pk, actor=approver, reason="race")
                outcomes.append("rejected")
        except InvalidStatus:
            outcomes.append("refused")

    assert not _run_threads(10, decide)
    assert outcomes.count("refused") == 9
    withdrawal.refresh_from_db()
    assert [o for o in outcomes if o != "refused"] == [withdrawal.status]
    assert Entry.objects.filter(reference=withdrawal.pk).count() == 2
    account = Account.objects.get(owner=customer)
    assert account.held == 0
    assert account.balance == (3_000 if withdrawal.status == "paid" else 5_000)
    code, out = verify()
    assert code == 0, out
