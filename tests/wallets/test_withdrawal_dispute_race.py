"""A withdrawal racing a dispute and a refund on one merchant wallet (real threads, real PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import User
from config.errors import FourEyesRequired, InsufficientFunds
from orders.models import Order
from payments.models import Dispute, Refund
from payments.services.disputes import dispute_open
from payments.services.refunds import refund_create
from tests.backoffice.conftest import user_in_role
from tests.conftest import client_for
from tests.factories import ProductFactory
from tests.orders.conftest import buy, fund
from tests.wallets.conftest import verify
from wallets.models import Account, Withdrawal
from wallets.withdrawals import withdrawal_approve, withdrawal_request

pytestmark = [pytest.mark.django_db(transaction=True)]

ORDERS = 6
PRICE = 20_000  # the merchant's net of each is 19_000 (5 % fee)


def _run(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert not worker.is_alive()


def test_withdrawals_disputes_and_refunds_when_racing_on_one_wallet_then_invariants_hold() -> None:
    merchant: User = user_in_role("merchant")
    customer: User = user_in_role("customer")
    finance, finance2 = user_in_role("finance"), user_in_role("finance")
    product = ProductFactory.create(merchant=merchant, price=PRICE, stock=None, fulfillment="thanks")
    fund(customer, PRICE * ORDERS)
    orders = [Order.objects.get(pk=buy(client_for(customer), product.pk).json()["id"]) for _ in range(ORDERS)]
    wallet = Account.objects.get(owner_id=merchant.pk, kind="merchant")
    assert wallet.balance == 19_000 * ORDERS

    start = threading.Barrier(ORDERS * 2 + 1)
    errors: list[BaseException] = []
    outcomes: list[str] = []
    lock = threading.Lock()

    def guarded(work):
        def run() -> None:
            try:
                start.wait()
                outcome = work()
                with lock:
                    outcomes.append(outcome)
            except BaseException as exc:  # noqa: BLE001  # reported below with the thread's failure
                with lock:
                    errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=run)

    def withdraw() -> str:
        try:
            withdrawal_request(user=merchant, amount=100_000)  # the four-eyes threshold
        except InsufficientFunds:
            return "withdrawal refused"
        return "withdrawal held"

    def dispute(order: Order) -> str:
        dispute_open(payment_id=order.payment_id or "", stripe_dispute_id=f"dp_{order.pk}", amount=PRICE)
        return "dispute"

    def refund(order: Order) -> str:
        try:
            refund_create(order_id=order.pk, amount=PRICE, reason="race", requested_by=merchant)
        except InsufficientFunds:
            return "refund refused"
        return "refund"

    workers = [guarded(withdraw)]
    workers += [guarded(lambda o=order: dispute(o)) for order in orders[: ORDERS // 2]]
    workers += [guarded(lambda o=order: refund(o)) for order in orders[ORDERS // 2 :]]
    workers += [guarded(withdraw) for _ in range(ORDERS // 2 * 2)]
    start = threading.Barrier(len(workers))
    _run(workers)
    assert not errors, errors

    wallet.refresh_from_db()
    held = sum(Withdrawal.objects.filter(account=wallet).values_list("amount", flat=True))
    disputed = sum(Dispute.objects.values_list("held_amount", flat=True))
    refunded_net = sum(Refund.objects.filter(status="succeeded").values_list("net_reversed", flat=True))
    assert wallet.balance >= 0 and wallet.held == held + disputed
    assert wallet.balance == 19_000 * ORDERS - held - disputed - refunded_net
    assert outcomes.count("withdrawal held") == Withdrawal.objects.count()
    assert verify()[0] == 0

    # Paying the held withdrawals still takes two different Finance users each.
    for withdrawal in Withdrawal.objects.all():
        withdrawal_approve(withdrawal_id=withdrawal.pk, actor=finance, reason="checked")
        with pytest.raises(FourEyesRequired):
            withdrawal_approve(withdrawal_id=withdrawal.pk, actor=finance, reason="again")
        assert withdrawal_approve(withdrawal_id=withdrawal.pk, actor=finance2, reason="ok").status == "paid"
    assert verify()[0] == 0
