"""Refunds of orders paid by card (through the fake Stripe server) and by wallet."""

from __future__ import annotations

import pytest
import stripe

from accounts.models import AuditEvent
from orders.models import Order
from payments.models import Payment, Refund
from payments.tasks import reconcile_payments
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.wallets.conftest import fund, verify
from wallets.models import Account

pytestmark = pytest.mark.stripe

REFUNDS = "/api/v1/refunds"


def _balance(user) -> int:
    account = Account.objects.filter(owner=user).first()
    return account.balance if account else 0


def _platform(kind: str) -> int:
    from django.db.models import Sum

    from wallets.models import Posting

    return Posting.objects.filter(account_id=f"acc_{kind}_usd").aggregate(total=Sum("amount"))["total"] or 0


def _card_order(fake_stripe, buyer, merchant, price=1000, number="4242424242424242") -> Order:
    product = ProductFactory.create(merchant=merchant, price=price, stock=None)
    pm = fake_stripe.attach_card(buyer, number=number)
    response = client_for(buyer).post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "card", "card": pm}, format="json"
    )
    assert response.status_code == 201, response.content
    return Order.objects.select_related("payment").get(pk=response.json()["id"])


def _wallet_order(buyer, merchant, price=1000) -> Order:
    product = ProductFactory.create(merchant=merchant, price=price, stock=None)
    fund(buyer, price)
    response = client_for(buyer).post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "wallet"}, format="json"
    )
    assert response.status_code == 201, response.content
    return Order.objects.select_related("payment").get(pk=response.json()["id"])


def test_refund_when_card_order_partly_then_stripe_refund_and_proportional_reversal(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    assert order.status == "paid" and (order.fee, order.merchant_net) == (50, 950)
    assert _balance(merchant) == 950

    response = client_for(merchant).post(
        REFUNDS, {"order": order.pk, "amount": 300, "reason": "damaged"}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["order"] == order.pk and body["amount"] == 300 and body["status"] == "succeeded"
    refund = Refund.objects.get(pk=body["id"])
    assert refund.stripe_refund_id is not None
    assert stripe.Refund.retrieve(refund.stripe_refund_id).amount == 300
    assert (refund.fee_reversed, refund.net_reversed) == (15, 285)
    order.refresh_from_db()
    assert order.status == "partially_refunded"
    assert Payment.objects.get(pk=order.payment_id).amount_refunded == 300
    assert _balance(merchant) == 950 - 285
    assert verify()[0] == 0


def test_refund_when_partial_partial_then_over_then_rest_then_again_sums_exactly(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant, price=999)  # fee 50 (49.95 rounded), net 949
    merchant_api = client_for(merchant)

    first = merchant_api.post(REFUNDS, {"order": order.pk, "amount": 333}, format="json")
    second = merchant_api.post(REFUNDS, {"order": order.pk, "amount": 333}, format="json")
    over = merchant_api.post(REFUNDS, {"order": order.pk, "amount": 334}, format="json")
    rest = merchant_api.post(REFUNDS, {"order": order.pk}, format="json")
    again = merchant_api.post(REFUNDS, {"order": order.pk, "amount": 1}, format="json")

    assert first.status_code == second.status_code == 201
    assert_error(over, 409, "refund_exceeds_payment", param="amount")
    assert rest.status_code == 201 and rest.json()["amount"] == 333
    assert_error(again, 409, "already_refunded")
    refunds = Refund.objects.filter(payment_id=order.payment_id, status="succeeded")
    assert sum(r.amount for r in refunds) == 999
    assert sum(r.fee_reversed for r in refunds) == order.fee
    assert sum(r.net_reversed for r in refunds) == order.merchant_net
    order.refresh_from_db()
    assert order.status == "refunded"
    assert _balance(merchant) == 0
    assert order.payment is not None and order.payment.stripe_charge_id is not None
    charge = stripe.Charge.retrieve(order.payment.stripe_charge_id)
    assert charge.amount_refunded == 999
    assert _platform("platform_fees") == 0
    assert verify()[0] == 0


def test_refund_when_wallet_order_then_money_back_in_buyer_wallet(fake_stripe, customer, merchant):
    order = _wallet_order(customer, merchant)
    assert _balance(customer) == 0

    response = client_for(merchant).post(REFUNDS, {"order": order.pk}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == 1000 and response.json()["status"] == "succeeded"
    assert _balance(customer) == 1000
    assert _balance(merchant) == 0
    order.refresh_from_db()
    assert order.status == "refunded"
    assert Refund.objects.get(pk=response.json()["id"]).stripe_refund_id is None
    assert stripe.Refund.list(limit=10).data == []
    assert verify()[0] == 0


def test_refund_when_customer_then_403(fake_stripe, customer, merchant):
    order = _wallet_order(customer, merchant)

    assert_error(client_for(customer).post(REFUNDS, {"order": order.pk}, format="json"), 403, "permission_denied")
    assert not Refund.objects.exists()


def test_refund_when_another_merchant_then_404(fake_stripe, customer, merchant):
    order = _wallet_order(customer, merchant)

    response = client_for(MerchantFactory.create()).post(REFUNDS, {"order": order.pk}, format="json")

    assert_error(response, 404, "not_found")
    assert not Refund.objects.exists()


def test_refund_when_staff_then_refunded_and_audited(fake_stripe, customer, merchant, staff_api):
    order = _card_order(fake_stripe, customer, merchant)

    response = staff_api.post(REFUNDS, {"order": order.pk, "amount": 400, "reason": "goodwill"}, format="json")

    assert response.status_code == 201, response.content
    audit = AuditEvent.objects.get(action="refund.create")
    assert audit.actor == staff_api.user and audit.object_id == response.json()["id"]
    assert audit.data["amount"] == 400


def test_refund_when_order_unpaid_then_409_invalid_status(fake_stripe, customer, merchant):
    product = ProductFactory.create(merchant=merchant, price=1000)
    pm = fake_stripe.attach_card(customer, number="4000002500003155")  # needs authentication: stays pending
    created = client_for(customer).post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "card", "card": pm}, format="json"
    )
    assert created.json()["status"] == "pending"

    response = client_for(merchant).post(REFUNDS, {"order": created.json()["id"]}, format="json")

    assert_error(response, 409, "invalid_status")


def test_refund_when_merchant_balance_too_low_then_402_and_nothing_refunded(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    withdrawal = client_for(merchant).post("/api/v1/wallet/withdrawals", {"amount": 900}, format="json")
    assert withdrawal.status_code == 201, withdrawal.content

    response = client_for(merchant).post(REFUNDS, {"order": order.pk}, format="json")

    assert_error(response, 402, "insufficient_funds")
    assert not Refund.objects.exists()
    assert Payment.objects.get(pk=order.payment_id).amount_refunded == 0
    assert stripe.Refund.list(limit=10).data == []
    order.refresh_from_db()
    assert order.status == "paid"


def test_refund_when_stripe_unreachable_then_502_pending_and_reconcile_finishes_once(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)

    with fake_stripe.unreachable():
        response = client_for(merchant).post(REFUNDS, {"order": order.pk, "amount": 500}, format="json")

    assert_error(response, 502, "stripe_unavailable")
    refund = Refund.objects.get(payment_id=order.payment_id)
    assert refund.status == "pending"
    assert Payment.objects.get(pk=order.payment_id).amount_refunded == 500  # reserved
    order.refresh_from_db()
    assert order.status == "paid"

    reconcile_payments(min_age_seconds=0)
    reconcile_payments(min_age_seconds=0)

    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert [r.amount for r in stripe.Refund.list(limit=10).data] == [500]
    order.refresh_from_db()
    assert order.status == "partially_refunded"
    assert verify()[0] == 0


def test_refund_when_amount_invalid_then_400_validation_error(fake_stripe, customer, merchant):
    order = _wallet_order(customer, merchant)
    merchant_api = client_for(merchant)

    for amount in (0, -5, 1.5, "100", True):
        response = merchant_api.post(REFUNDS, {"order": order.pk, "amount": amount}, format="json")
        assert_error(response, 400, "validation_error", param="amount")
    assert not Refund.objects.exists()


def test_refund_detail_when_buyer_merchant_staff_then_visible_others_404(fake_stripe, customer, merchant, staff):
    order = _wallet_order(customer, merchant)
    refund_id = client_for(merchant).post(REFUNDS, {"order": order.pk, "amount": 100}, format="json").json()["id"]

    for user in (customer, merchant, staff):
        response = client_for(user).get(f"/api/v1/refunds/{refund_id}")
        assert response.status_code == 200, response.content
        assert response.json()["id"] == refund_id and response.json()["order"] == order.pk
    assert_error(client_for(CustomerFactory.create()).get(f"/api/v1/refunds/{refund_id}"), 404, "not_found")
    assert_error(client_for(MerchantFactory.create()).get(f"/api/v1/refunds/{refund_id}"), 404, "not_found")


def test_refund_when_stripe_refunded_but_answer_lost_then_charge_refunded_event_finishes_it_once(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    from tests.payments.test_webhooks import deliver, event_body, sign

    order = _card_order(fake_stripe, customer, merchant)
    with fake_stripe.unreachable():
        client_for(merchant).post(REFUNDS, {"order": order.pk, "amount": 600}, format="json")
    refund = Refund.objects.get(payment_id=order.payment_id)
    payment = Payment.objects.get(pk=order.payment_id)
    # The refund did reach Stripe; only its answer was lost.
    assert payment.stripe_payment_intent_id is not None
    stripe.Refund.create(payment_intent=payment.stripe_payment_intent_id, amount=600, metadata={"refund_id": refund.pk})
    charge = stripe.Charge.retrieve(payment.stripe_charge_id)

    with django_capture_on_commit_callbacks(execute=True):
        deliver(body := event_body("charge.refunded", charge), sign(body))
    reconcile_payments(min_age_seconds=0)

    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert refund.stripe_refund_id is not None and refund.stripe_refund_id.startswith("re_")
    assert [r.amount for r in stripe.Refund.list(limit=10).data] == [600]
    order.refresh_from_db()
    assert order.status == "partially_refunded"
    assert verify()[0] == 0
