"""Withdrawal controls: card top-ups cool off before they can be withdrawn; card-sale income waits in the
merchant's incoming account until the periodic release; ``GET wallet?at=``; ledger_verify over both."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from config.errors import InsufficientFunds
from orders.hooks import ORDER_PAYMENT_HOOKS
from orders.locks import lock_order
from orders.models import Order
from orders.services.outcomes import order_on_payment_changed
from payments.locks import lock_payment
from payments.models import Payment
from payments.services.disputes import dispute_open
from tests.backoffice.conftest import user_in_role
from tests.conftest import assert_error
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.orders.conftest import buy, reserve
from tests.wallets.conftest import fund, verify
from wallets import tasks
from wallets.deposits import deposit_create, deposit_on_payment_changed
from wallets.models import Account, AccountKind, Entry, EntryKind, Posting, Withdrawal
from wallets.withdrawals import withdrawal_reject, withdrawal_request

WALLET = "/api/v1/wallet"
WITHDRAWALS = "/api/v1/wallet/withdrawals"


class Clock:
    """Time travel for one module: its ``timezone.now()`` answers ``at`` (everything else keeps real time)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _travel(monkeypatch: pytest.MonkeyPatch, module: str, at: datetime) -> None:
    monkeypatch.setattr(f"{module}.timezone", Clock(at))


def _card_top_up(monkeypatch: pytest.MonkeyPatch, user: User, amount: int) -> None:
    """A card top-up whose charge succeeds (the charge stubbed as payments records it)."""

    def charged(*, payment_id: str, payment_method_id: str | None) -> Payment:
        with transaction.atomic():
            payment = lock_payment(payment_id)
            payment.status = "succeeded"
            payment.save(update_fields=["status"])
            deposit_on_payment_changed(payment=payment)
        return Payment.objects.get(pk=payment_id)

    monkeypatch.setattr("wallets.deposits.card_payment_confirm", charged)
    deposit_create(user=user, amount=amount, payment_method_id="pm_card_visa")


def _card_sale(buyer: User, product: Any) -> Order:
    """A card order whose payment succeeded, as payments reports it through the orders hook."""
    order = reserve(buyer, product)
    with transaction.atomic():
        locked = lock_order(order.pk)
        assert locked.payment_id is not None
        payment = lock_payment(locked.payment_id)
        payment.status = "succeeded"
        payment.save(update_fields=["status"])
        order_on_payment_changed(order=locked, payment=payment)
    return Order.objects.get(pk=order.pk)


def _wallet(api: APIClient, at: datetime | None = None) -> dict[str, Any]:
    response = api.get(WALLET, {"at": at.isoformat()} if at else {})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


# --- cooling-off ------------------------------------------------------------------


@pytest.mark.django_db
def test_withdrawal_when_card_top_up_cooling_then_402_until_hours_pass_and_spendable_meanwhile(
    settings: Any, monkeypatch: pytest.MonkeyPatch, customer: User, customer_api: APIClient
) -> None:
    settings.DEPOSIT_COOLING_OFF_HOURS = 24
    fund(customer, 1_000)  # not card money: withdrawable at once
    _card_top_up(monkeypatch, customer, 5_000)

    assert _wallet(customer_api) == {
        "balance": 6_000, "withdrawable": 1_000, "pending": 0, "incoming": 0, "currency": "usd"
    }  # fmt: skip
    response = customer_api.post(WITHDRAWALS, {"amount": 1_500}, format="json")
    assert_error(response, 402, "insufficient_funds")
    assert "Withdrawable balance 1000 is less than 1500" in response.json()["error"]["message"]
    assert not Withdrawal.objects.exists()

    # Cooling money can be spent on purchases at once.
    product = ProductFactory.create(price=3_000, stock=5)
    assert buy(customer_api, product.pk).json()["status"] == "paid"
    # Spending takes the withdrawable money first: 3000 left, all of it still cooling.
    assert _wallet(customer_api)["withdrawable"] == 0

    later = timezone.now() + timedelta(hours=24, minutes=1)
    assert _wallet(customer_api, at=later)["withdrawable"] == 3_000
    _travel(monkeypatch, "wallets.withdrawals", later)
    response = customer_api.post(WITHDRAWALS, {"amount": 3_000}, format="json")
    assert response.status_code == 201, response.content
    assert verify()[0] == 0


@pytest.mark.django_db
def test_withdrawal_when_cooling_off_is_0_then_card_top_up_withdrawable_at_once(
    monkeypatch: pytest.MonkeyPatch, customer: User, customer_api: APIClient
) -> None:
    _card_top_up(monkeypatch, customer, 2_000)
    assert _wallet(customer_api)["withdrawable"] == 2_000
    assert customer_api.post(WITHDRAWALS, {"amount": 2_000}, format="json").status_code == 201


# --- merchant availability ---------------------------------------------------------


@pytest.mark.django_db
def test_card_sale_when_availability_days_then_incoming_until_release_task_after_days(
    settings: Any, monkeypatch: pytest.MonkeyPatch, merchant: User, merchant_api: APIClient
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 7
    product = ProductFactory.create(merchant=merchant, price=1_000, stock=5)
    order = _card_sale(CustomerFactory.create(), product)

    assert _wallet(merchant_api) == {
        "balance": 0, "withdrawable": 0, "pending": 0, "incoming": 950, "currency": "usd"
    }  # fmt: skip
    assert_error(merchant_api.post(WITHDRAWALS, {"amount": 500}, format="json"), 402, "insufficient_funds")
    assert tasks.income_release_due() == 0  # not due yet
    assert _wallet(merchant_api)["incoming"] == 950

    before_release = timezone.now()
    _travel(monkeypatch, "wallets.availability", timezone.now() + timedelta(days=7, minutes=1))
    assert tasks.income_release_due() == 1
    assert tasks.income_release_due() == 0  # released once

    assert _wallet(merchant_api) == {
        "balance": 950, "withdrawable": 950, "pending": 0, "incoming": 0, "currency": "usd"
    }  # fmt: skip
    release = Entry.objects.get(kind=EntryKind.INCOME_RELEASED)
    assert release.reference == order.pk
    # The history answers what it was before the release.
    assert _wallet(merchant_api, at=before_release)["incoming"] == 950
    assert _wallet(merchant_api, at=before_release)["balance"] == 0
    assert merchant_api.post(WITHDRAWALS, {"amount": 950}, format="json").status_code == 201
    assert verify()[0] == 0


@pytest.mark.django_db
def test_wallet_purchase_when_availability_days_then_merchant_credited_at_once(
    settings: Any, merchant: User, merchant_api: APIClient, customer: User, customer_api: APIClient
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 7
    fund(customer, 5_000)
    product = ProductFactory.create(merchant=merchant, price=1_000, stock=5)
    assert buy(customer_api, product.pk).json()["status"] == "paid"
    assert _wallet(merchant_api) == {
        "balance": 950, "withdrawable": 950, "pending": 0, "incoming": 0, "currency": "usd"
    }  # fmt: skip
    assert not Account.objects.filter(kind=AccountKind.INCOMING).exists()


@pytest.mark.django_db
def test_card_sale_when_availability_days_0_then_merchant_wallet_credited_at_once(
    merchant: User, merchant_api: APIClient
) -> None:
    _card_sale(CustomerFactory.create(), ProductFactory.create(merchant=merchant, price=1_000, stock=5))
    assert _wallet(merchant_api)["balance"] == 950
    assert not Account.objects.filter(kind=AccountKind.INCOMING).exists()


@pytest.mark.django_db
def test_dispute_when_card_sale_income_waiting_then_released_and_held(
    settings: Any, merchant: User, merchant_api: APIClient
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 7
    order = _card_sale(CustomerFactory.create(), ProductFactory.create(merchant=merchant, price=1_000, stock=5))
    assert order.payment_id is not None
    dispute = dispute_open(payment_id=order.payment_id, stripe_dispute_id="dp_1", amount=1_000)
    assert dispute.held_amount == 950
    assert _wallet(merchant_api) == {
        "balance": 0, "withdrawable": 0, "pending": 950, "incoming": 0, "currency": "usd"
    }  # fmt: skip
    assert verify()[0] == 0


# --- GET wallet?at= ----------------------------------------------------------------


@pytest.mark.django_db
def test_wallet_at_when_past_times_then_balances_as_they_were(customer: User, customer_api: APIClient) -> None:
    start = timezone.now()
    fund(customer, 5_000)
    funded = timezone.now()
    withdrawal = withdrawal_request(user=customer, amount=2_000)
    held = timezone.now()
    withdrawal_reject(withdrawal_id=withdrawal.pk, actor=user_in_role("finance"), reason="test")

    assert _wallet(customer_api, at=start)["balance"] == 0
    assert _wallet(customer_api, at=funded) == {
        "balance": 5_000, "withdrawable": 5_000, "pending": 0, "incoming": 0, "currency": "usd"
    }  # fmt: skip
    assert _wallet(customer_api, at=held) == {
        "balance": 3_000, "withdrawable": 3_000, "pending": 2_000, "incoming": 0, "currency": "usd"
    }  # fmt: skip
    assert _wallet(customer_api)["balance"] == 5_000
    assert _wallet(customer_api)["pending"] == 0


@pytest.mark.django_db
def test_wallet_at_when_not_a_time_then_400_validation_error(customer_api: APIClient) -> None:
    response = customer_api.get(WALLET, {"at": "yesterday"})
    assert_error(response, 400, "validation_error")


# --- ledger_verify -----------------------------------------------------------------


def _raw(sql: str, params: list[Any]) -> None:
    """Writes behind the ledger's back, with the immutability trigger switched off."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.mark.django_db
def test_ledger_verify_when_release_tampered_then_exit_1_naming_order(
    settings: Any, monkeypatch: pytest.MonkeyPatch, merchant: User
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 1
    order = _card_sale(CustomerFactory.create(), ProductFactory.create(merchant=merchant, price=1_000, stock=5))
    _travel(monkeypatch, "wallets.availability", timezone.now() + timedelta(days=2))
    assert tasks.income_release_due() == 1
    assert verify()[0] == 0

    # The release doubled (still balanced): more income released than the sale brought in.
    release = Entry.objects.get(kind=EntryKind.INCOME_RELEASED)
    _raw(f"UPDATE {Posting._meta.db_table} SET amount = amount * 2 WHERE entry_id = %s", [release.pk])
    code, out = verify()
    assert code == 1, out
    assert f"order {order.pk}: income waiting -950 (released more than credited)" in out


@pytest.mark.django_db
def test_ledger_verify_when_release_sent_to_another_wallet_then_exit_1(
    settings: Any, monkeypatch: pytest.MonkeyPatch, merchant: User
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 1
    order = _card_sale(CustomerFactory.create(), ProductFactory.create(merchant=merchant, price=1_000, stock=5))
    _travel(monkeypatch, "wallets.availability", timezone.now() + timedelta(days=2))
    tasks.income_release_due()
    other = fund(MerchantFactory.create(), 100).postings.get(amount=100).account_id
    release = Entry.objects.get(kind=EntryKind.INCOME_RELEASED)
    _raw(
        f"UPDATE {Posting._meta.db_table} SET account_id = %s WHERE entry_id = %s AND amount > 0",
        [other, release.pk],
    )
    code, out = verify()
    assert code == 1, out
    assert f"order {order.pk}: income waiting 0 (released more than credited), 1 leg(s) astray" in out


# --- the release racing withdrawals --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_release_task_when_racing_withdrawals_on_one_wallet_then_each_order_released_once_and_nothing_lost(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 3
    merchant = MerchantFactory.create()
    fund(merchant, 2_000)
    product = ProductFactory.create(merchant=merchant, price=1_000, stock=None)
    buyer = CustomerFactory.create()
    orders = [_card_sale(buyer, product) for _ in range(10)]
    assert Account.objects.get(owner=merchant, kind=AccountKind.INCOMING).balance == 9_500
    _travel(monkeypatch, "wallets.availability", timezone.now() + timedelta(days=3, minutes=1))

    start = threading.Barrier(6)
    errors: list[BaseException] = []
    withdrawn: list[int] = []
    released: list[int] = []

    def releaser() -> None:
        try:
            start.wait()
            released.append(tasks.income_release_due())
        except BaseException as exc:  # noqa: BLE001 - a worker thread hands every failure to the test thread
            errors.append(exc)
        finally:
            connection.close()

    def withdrawer() -> None:
        try:
            start.wait()
            for _ in range(6):
                try:
                    withdrawal_request(user=merchant, amount=500)
                    withdrawn.append(500)
                except InsufficientFunds:
                    pass
        except BaseException as exc:  # noqa: BLE001 - a worker thread hands every failure to the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=releaser) for _ in range(2)]
    threads += [threading.Thread(target=withdrawer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sum(released) == 10  # each order released by exactly one of the two releasers
    wallet = Account.objects.get(owner=merchant, kind=AccountKind.MERCHANT)
    incoming = Account.objects.get(owner=merchant, kind=AccountKind.INCOMING)
    assert incoming.balance == 0
    assert wallet.balance + wallet.held == 2_000 + 9_500
    assert wallet.held == sum(withdrawn) == Withdrawal.objects.filter(user=merchant).count() * 500
    for order in orders:
        assert Entry.objects.filter(kind=EntryKind.INCOME_RELEASED, reference=order.pk).count() == 1
    code, out = verify()
    assert code == 0, out


@pytest.mark.django_db
def test_refund_legs_when_card_sale_income_waiting_then_refunded_part_released_first(
    settings: Any, merchant: User, merchant_api: APIClient
) -> None:
    settings.MERCHANT_AVAILABILITY_DAYS = 7
    order = _card_sale(CustomerFactory.create(), ProductFactory.create(merchant=merchant, price=1_000, stock=5))
    refunds = ORDER_PAYMENT_HOOKS.refunds
    assert refunds is not None
    with transaction.atomic():
        locked = lock_order(order.pk)
        assert locked.payment_id is not None
        payment = lock_payment(locked.payment_id)
        legs = refunds.legs(locked, payment, 400, 20, 380)
    wallet = Account.objects.get(owner=merchant, kind=AccountKind.MERCHANT)
    assert {leg.account_id: leg.amount for leg in legs}[wallet.pk] == -380
    # The refund's net part became available for the refund to take; the rest still waits.
    assert _wallet(merchant_api)["balance"] == 380
    assert _wallet(merchant_api)["incoming"] == 570
