"""Card payments end to end against the local fake Stripe server: deposits charge a saved card."""

from __future__ import annotations

import pytest
import stripe
from djstripe.models import PaymentIntent as DjstripePaymentIntent

from payments.models import Payment, PaymentKind, PaymentMethodType, StripeCustomer
from payments.services.charges import card_payment_confirm, payment_create
from payments.tasks import reconcile_payments
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory
from wallets.models import Account, Deposit, Entry

pytestmark = pytest.mark.stripe

DEPOSITS = "/api/v1/wallet/deposits"


def _balance(user) -> int:
    account = Account.objects.filter(owner=user).first()
    return account.balance if account else 0


def _intents_for(payment_id: str) -> list:
    # A StripeObject is not a dict: read its metadata through to_dict().
    intents = stripe.PaymentIntent.list(limit=100).data
    return [pi for pi in intents if pi.metadata and pi.metadata.to_dict().get("payment_id") == payment_id]


def test_deposit_when_card_charged_then_payment_succeeded_and_wallet_credited(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user)

    response = customer_api.post(DEPOSITS, {"amount": 2500, "payment_method": pm}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "succeeded"
    payment = Payment.objects.get(pk=response.json()["payment"])
    assert payment.status == "succeeded"
    assert payment.stripe_charge_id is not None and payment.stripe_charge_id.startswith("ch_")
    assert payment.stripe_payment_intent_id is not None
    intent = stripe.PaymentIntent.retrieve(payment.stripe_payment_intent_id)
    assert intent.status == "succeeded"
    assert intent.amount == 2500 and intent.currency == "usd"
    assert intent.metadata["payment_id"] == payment.pk
    assert _balance(customer_api.user) == 2500
    assert DjstripePaymentIntent.objects.filter(id=payment.stripe_payment_intent_id).exists()

    listed = customer_api.get("/api/v1/payments").json()["results"]
    assert listed == [
        {
            "id": payment.pk,
            "kind": "deposit",
            "amount": 2500,
            "currency": "usd",
            "status": "succeeded",
            "amount_refunded": 0,
            "stripe_payment_intent": payment.stripe_payment_intent_id,
            "created_at": listed[0]["created_at"],
        }
    ]
    assert customer_api.get(f"/api/v1/payments/{payment.pk}").json()["id"] == payment.pk


def test_deposit_when_card_declined_at_charge_then_402_payment_failed_and_nothing_credited(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user, number="4000000000000341")

    response = customer_api.post(DEPOSITS, {"amount": 2500, "payment_method": pm}, format="json")

    error = assert_error(response, 402, "card_declined")
    assert error["type"] == "card_error"
    payment = Payment.objects.get(user=customer_api.user)
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"
    assert Deposit.objects.get(payment=payment).status == "failed"
    assert _balance(customer_api.user) == 0
    assert not Entry.objects.exists()


def test_deposit_when_card_of_another_user_then_400_payment_method_invalid_and_no_charge(fake_stripe, customer_api):
    theirs = fake_stripe.attach_card(CustomerFactory.create())

    response = customer_api.post(DEPOSITS, {"amount": 2500, "payment_method": theirs}, format="json")

    assert_error(response, 400, "payment_method_invalid", param="payment_method")
    assert stripe.PaymentIntent.list(limit=10).data == []
    assert _balance(customer_api.user) == 0
    assert Deposit.objects.get(user=customer_api.user).status == "canceled"


def test_deposit_when_card_needs_authentication_then_requires_action_with_client_secret(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user, number="4000002500003155")

    response = customer_api.post(DEPOSITS, {"amount": 2500, "payment_method": pm}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending"
    payment = Payment.objects.get(pk=response.json()["payment"])
    assert payment.status == "requires_action"
    assert payment.client_secret is not None and payment.stripe_payment_intent_id is not None
    assert payment.client_secret.startswith(payment.stripe_payment_intent_id + "_secret_")
    assert _balance(customer_api.user) == 0


def test_confirm_when_no_card_given_then_default_card_charged(fake_stripe, customer):
    fake_stripe.attach_card(customer)
    default = fake_stripe.attach_card(customer, number="5555555555554444")
    client_for(customer).post(f"/api/v1/payment-methods/{default}/default")
    payment = payment_create(
        user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=700, currency="usd"
    )

    charged = card_payment_confirm(payment_id=payment.pk, payment_method_id=None)

    assert charged.status == "succeeded"
    assert charged.stripe_payment_method_id == default
    assert charged.stripe_payment_intent_id is not None
    assert stripe.PaymentIntent.retrieve(charged.stripe_payment_intent_id).payment_method == default


def test_confirm_when_user_has_no_card_then_400_payment_method_invalid(fake_stripe, customer):
    from config.errors import PaymentMethodInvalid

    payment = payment_create(
        user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=700, currency="usd"
    )

    with pytest.raises(PaymentMethodInvalid):
        card_payment_confirm(payment_id=payment.pk, payment_method_id=None)
    assert Payment.objects.get(pk=payment.pk).status == "requires_payment_method"
    assert stripe.PaymentIntent.list(limit=10).data == []


def test_confirm_when_called_again_then_card_charged_once(fake_stripe, customer):
    pm = fake_stripe.attach_card(customer)
    payment = payment_create(
        user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=900, currency="usd"
    )

    first = card_payment_confirm(payment_id=payment.pk, payment_method_id=pm)
    again = card_payment_confirm(payment_id=payment.pk, payment_method_id=pm)

    assert first.status == again.status == "succeeded"
    assert len(_intents_for(payment.pk)) == 1


def test_payment_detail_when_another_users_then_404(fake_stripe, customer_api):
    other = CustomerFactory.create()
    pm = fake_stripe.attach_card(other)
    response = client_for(other).post(DEPOSITS, {"amount": 1000, "payment_method": pm}, format="json")
    payment_id = response.json()["payment"]

    assert_error(customer_api.get(f"/api/v1/payments/{payment_id}"), 404, "not_found")
    assert customer_api.get("/api/v1/payments").json()["results"] == []


def test_deposit_when_stripe_unreachable_then_502_no_money_moved_and_reconcile_settles_it(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user)

    with fake_stripe.unreachable():
        response = customer_api.post(DEPOSITS, {"amount": 2500, "payment_method": pm}, format="json")

    error = assert_error(response, 502, "stripe_unavailable")
    assert error["type"] == "api_error"
    payment = Payment.objects.get(user=customer_api.user)
    assert payment.status == "processing"
    assert Deposit.objects.get(payment=payment).status == "pending"
    assert _balance(customer_api.user) == 0
    assert not Entry.objects.exists()

    # Stripe answers again: nothing was ever charged, so the payment ends canceled, money untouched. Reconcile
    # asked for the intent with the create's idempotency key, which made the one the lost call never did:
    # it is canceled at once and charges nobody.
    reconcile_payments(min_age_seconds=0)

    payment.refresh_from_db()
    assert payment.status == "canceled"
    assert Deposit.objects.get(payment=payment).status == "canceled"
    assert _balance(customer_api.user) == 0
    assert [intent.status for intent in _intents_for(payment.pk)] == ["canceled"]


def test_reconcile_when_stripe_charged_but_answer_was_lost_then_credited_once(fake_stripe, customer):
    """Stripe confirmed the intent, but its answer never reached us (we crashed or timed out)."""
    pm = fake_stripe.attach_card(customer)
    with_deposit = client_for(customer)
    with fake_stripe.unreachable():
        response = with_deposit.post(DEPOSITS, {"amount": 4000, "payment_method": pm}, format="json")
    assert response.status_code == 502
    payment = Payment.objects.get(user=customer)
    customer_id = customer.stripe_customer.stripe_customer_id
    intent = stripe.PaymentIntent.create(
        amount=4000,
        currency="usd",
        customer=customer_id,
        payment_method=pm,
        confirm=True,
        metadata={"payment_id": payment.pk, "kind": "deposit"},
    )
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=intent.id)

    reconcile_payments(min_age_seconds=0)
    reconcile_payments(min_age_seconds=0)

    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert Deposit.objects.get(payment=payment).status == "succeeded"
    assert _balance(customer) == 4000
    assert Entry.objects.filter(kind="deposit").count() == 1


def test_reconcile_when_intent_created_but_never_confirmed_then_canceled_at_stripe(fake_stripe, customer):
    pm = fake_stripe.attach_card(customer)
    payment = payment_create(
        user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=800, currency="usd"
    )
    stripe_customer_id = StripeCustomer.objects.get(user=customer).stripe_customer_id  # attach_card made it
    assert stripe_customer_id is not None
    intent = stripe.PaymentIntent.create(
        amount=800,
        currency="usd",
        customer=stripe_customer_id,
        payment_method=pm,
        metadata={"payment_id": payment.pk},
    )
    Payment.objects.filter(pk=payment.pk).update(status="processing", stripe_payment_intent_id=intent.id)

    reconcile_payments(min_age_seconds=0)

    payment.refresh_from_db()
    assert payment.status == "canceled"
    assert stripe.PaymentIntent.retrieve(intent.id).status == "canceled"


def test_order_when_card_declined_then_402_order_failed_and_payment_failed(fake_stripe, customer_api):
    from orders.models import Order
    from tests.factories import ProductFactory

    product = ProductFactory.create(price=1500, stock=3)
    pm = fake_stripe.attach_card(customer_api.user, number="4000000000000341")

    response = customer_api.post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "card", "card": pm}, format="json"
    )

    assert_error(response, 402, "card_declined")
    order = Order.objects.get(buyer=customer_api.user)
    assert order.status == "failed"
    assert Payment.objects.get(pk=order.payment_id).status == "failed"
    product.refresh_from_db()
    assert product.stock == 3
    assert not Entry.objects.exists()


def test_order_when_card_needs_authentication_then_pending_with_client_secret(fake_stripe, customer_api):
    from tests.factories import ProductFactory

    product = ProductFactory.create(price=1500)
    pm = fake_stripe.attach_card(customer_api.user, number="4000002500003155")

    response = customer_api.post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "card", "card": pm}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    payment = Payment.objects.get(pk=body["payment"])
    assert payment.status == "requires_action"
    assert body["client_secret"] == payment.client_secret


def test_reconcile_command_when_run_then_reports_what_it_settled(fake_stripe, customer):
    from io import StringIO

    from django.core.management import call_command

    payment = payment_create(
        user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=800, currency="usd"
    )
    Payment.objects.filter(pk=payment.pk).update(status="processing")
    out = StringIO()

    call_command("reconcile_payments", "--min-age", "0", stdout=out)

    assert "payments settled: 1" in out.getvalue()
    assert Payment.objects.get(pk=payment.pk).status == "canceled"


def test_payment_endpoints_when_over_rate_then_429(fake_stripe, customer_api, settings):
    settings.THROTTLE_SCALE = 1 / 30  # payments: 1 a minute

    first = customer_api.post("/api/v1/payment-methods/setup-intent")
    second = customer_api.post("/api/v1/payment-methods/setup-intent")

    assert first.status_code == 200
    assert_error(second, 429, "rate_limited")
    assert customer_api.get("/api/v1/payment-methods").status_code == 200  # reading is not throttled
