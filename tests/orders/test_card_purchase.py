"""Card purchases against the local fake Stripe server (``fake_stripe`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from orders import tasks
from orders.locks import lock_order
from orders.models import Order, OrderEvent
from orders.services.cancel import orders_expire
from orders.services.outcomes import late_credit_key, order_on_payment_changed
from payments.locks import lock_payment
from payments.models import Payment
from tests.conftest import assert_error
from tests.factories import CustomerFactory
from tests.orders.conftest import buy, fund, reserve
from wallets.ledger import platform_account_id
from wallets.models import Account, AccountKind, Entry

pytestmark = pytest.mark.django_db

DECLINED_AT_CHARGE = "4000000000000341"


def _stock(product) -> int:
    product.refresh_from_db()
    return product.stock


def test_card_purchase_when_default_card_succeeds_then_paid_with_fulfillment(
    fake_stripe, customer, customer_api, product
):
    fake_stripe.attach_card(customer)

    response = buy(customer_api, product.pk, payment_method="card", quantity=2)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "paid"
    assert body["fulfillment"] == "KEY-AAAA-BBBB"
    assert body["client_secret"] is None
    assert _stock(product) == 3
    payment = Payment.objects.get(pk=body["payment"])
    assert (payment.method, payment.status, payment.amount) == ("card", "succeeded", 2000)
    assert payment.stripe_payment_intent_id
    entry = Entry.objects.get(reference=body["id"], kind="purchase")
    legs = {p.account_id: p.amount for p in entry.postings.all()}
    assert legs[platform_account_id(AccountKind.CARD_CLEARING, "usd")] == -2000
    assert legs[platform_account_id(AccountKind.PLATFORM_FEES, "usd")] == 100
    assert Account.objects.get(owner=product.merchant).balance == 1900
    assert OrderEvent.objects.filter(order_id=body["id"], type="order.paid").count() == 1
    call_command("ledger_verify")


def test_card_purchase_when_named_saved_card_then_paid(fake_stripe, customer, customer_api, product):
    fake_stripe.attach_card(customer)
    second = fake_stripe.attach_card(customer)

    body = buy(customer_api, product.pk, payment_method="card", card=second).json()

    assert body["status"] == "paid"
    assert Payment.objects.get(pk=body["payment"]).stripe_payment_method_id == second


def test_card_purchase_when_declined_then_402_order_failed_and_stock_back(fake_stripe, customer, customer_api, product):
    fake_stripe.attach_card(customer, number=DECLINED_AT_CHARGE)

    response = buy(customer_api, product.pk, payment_method="card")

    assert_error(response, 402, "card_declined")
    order = Order.objects.get()
    assert order.status == "failed"
    assert _stock(product) == 5
    assert not Entry.objects.filter(kind="purchase").exists()
    assert OrderEvent.objects.filter(order=order, type="order.failed").count() == 1


def test_card_purchase_when_card_not_saved_then_400_and_stock_back(fake_stripe, customer, customer_api, product):
    response = buy(customer_api, product.pk, payment_method="card", card="pm_not_mine")

    assert_error(response, 400, "payment_method_invalid")
    order = Order.objects.select_related("payment").get()
    assert order.status == "failed"
    assert order.payment is not None
    assert order.payment.status in ("failed", "canceled")  # closed, never left waiting
    assert _stock(product) == 5


def test_card_purchase_when_stripe_unreachable_then_502_pending_then_expiry_returns_stock(
    fake_stripe, customer, customer_api, product
):
    fake_stripe.attach_card(customer)

    with fake_stripe.unreachable():
        response = buy(customer_api, product.pk, payment_method="card")

    assert_error(response, 502, "stripe_unavailable")
    order = Order.objects.get()
    assert order.status == "pending"
    assert _stock(product) == 4  # still reserved
    assert_error(buy(customer_api, product.pk, payment_method="card", quantity=5), 409, "out_of_stock")

    # Not expired yet: the periodic task leaves it alone.
    tasks.expire_reservations()
    assert Order.objects.get(pk=order.pk).status == "pending"

    Order.objects.filter(pk=order.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert tasks.expire_reservations() == 1

    order.refresh_from_db()
    assert order.status == "canceled"
    assert _stock(product) == 5
    assert OrderEvent.objects.filter(order=order, type="order.canceled").count() == 1


def test_reservation_when_expired_then_canceled_and_stock_back(customer, product):
    order = reserve(customer, product, quantity=3)
    fresh = reserve(CustomerFactory.create(), product, quantity=1)
    assert _stock(product) == 1

    canceled = orders_expire(now=timezone.now() + timedelta(minutes=16))

    assert canceled == 2
    assert Order.objects.get(pk=order.pk).status == "canceled"
    assert Order.objects.get(pk=fresh.pk).status == "canceled"
    assert _stock(product) == 5


def test_reservation_when_not_expired_then_kept(customer, product):
    order = reserve(customer, product)
    assert orders_expire(now=timezone.now() + timedelta(minutes=14)) == 0
    assert Order.objects.get(pk=order.pk).status == "pending"
    assert _stock(product) == 4


def _payment_succeeds(order_id: str) -> Order:
    """What payments.payment_sync does when Stripe reports the intent succeeded."""
    with transaction.atomic():
        order = lock_order(order_id)
        assert order.payment_id is not None
        payment = lock_payment(order.payment_id)
        payment.status = "succeeded"
        payment.save(update_fields=["status"])
        order_on_payment_changed(order=order, payment=payment)
        order_on_payment_changed(order=order, payment=payment)  # idempotent
    return Order.objects.get(pk=order_id)


def test_late_card_success_when_stock_left_then_order_paid(customer, customer_api, product):
    order = reserve(customer, product)
    assert customer_api.post(f"/api/v1/orders/{order.pk}/cancel").json()["status"] == "canceled"
    assert _stock(product) == 5

    order = _payment_succeeds(order.pk)

    assert order.status == "paid"
    assert order.fulfillment == "KEY-AAAA-BBBB"
    assert _stock(product) == 4
    assert Entry.objects.filter(reference=order.pk, kind="purchase").count() == 1
    assert AuditEvent.objects.filter(action="order.paid_late", object_id=order.pk).exists()


def test_late_card_success_when_stock_gone_then_buyer_wallet_credited(customer, customer_api, merchant):
    from tests.factories import ProductFactory

    product = ProductFactory.create(merchant=merchant, stock=1, price=700)
    order = reserve(customer, product)
    customer_api.post(f"/api/v1/orders/{order.pk}/cancel")
    other = CustomerFactory.create()
    fund(other, 700)
    from tests.conftest import client_for

    assert buy(client_for(other), product.pk).status_code == 201  # the last one is gone

    order = _payment_succeeds(order.pk)

    assert order.status == "canceled"
    assert _stock(product) == 0
    assert Account.objects.get(owner=customer).balance == 700
    assert Entry.objects.filter(reference=order.pk, idempotency_key=late_credit_key(order.pk)).count() == 1
    assert AuditEvent.objects.filter(action="order.late_payment_credited", object_id=order.pk).exists()
    call_command("ledger_verify")


def test_payment_failed_when_order_pending_then_failed_and_idempotent(customer, product):
    order = reserve(customer, product, quantity=2)
    with transaction.atomic():
        order = lock_order(order.pk)
        assert order.payment_id is not None
        payment = lock_payment(order.payment_id)
        payment.status = "failed"
        payment.save(update_fields=["status"])
        order_on_payment_changed(order=order, payment=payment)
        order_on_payment_changed(order=order, payment=payment)
    assert Order.objects.get(pk=order.pk).status == "failed"
    assert _stock(product) == 5


def test_card_purchase_when_card_needs_authentication_then_pending_with_client_secret(
    fake_stripe, customer, customer_api, product
):
    fake_stripe.attach_card(customer, number="4000002500003155")

    response = buy(customer_api, product.pk, payment_method="card")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["client_secret"]
    assert body["fulfillment"] is None
    assert _stock(product) == 4
    assert customer_api.get(f"/api/v1/orders/{body['id']}").json()["client_secret"] == body["client_secret"]


def test_order_cancel_when_card_awaits_authentication_then_canceled_and_stock_back(
    fake_stripe, customer, customer_api, product
):
    fake_stripe.attach_card(customer, number="4000002500003155")
    order_id = buy(customer_api, product.pk, payment_method="card", quantity=2).json()["id"]
    assert _stock(product) == 3

    response = customer_api.post(f"/api/v1/orders/{order_id}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "canceled"
    assert response.json()["client_secret"] is None
    assert _stock(product) == 5
