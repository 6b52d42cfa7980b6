"""Webhooks trusted only for what they prove, and Stripe changing its mind (refunds, disputes)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import stripe

from orders.models import Order
from payments import gateway
from payments.models import Dispute, Payment, Refund, StripeEvent
from payments.services.refunds import refund_finish
from tests.conftest import client_for
from tests.payments.test_disputes_admin import _dispute_object, _open_dispute, _wallet
from tests.payments.test_refunds import _card_order
from tests.payments.test_webhooks import _balance, _charged_deposit_unseen, deliver, event_body, sign
from tests.wallets.conftest import verify
from wallets.models import Deposit, Entry

pytestmark = pytest.mark.stripe

ROOT = Path(__file__).resolve().parents[2]


def _event_body(event_type: str, obj: object, **top: object) -> bytes:
    event = json.loads(event_body(event_type, obj))
    event.update(top)
    return json.dumps(event).encode()


def _deliver(capture, event_type: str, obj: object, **top: object) -> StripeEvent:
    with capture(execute=True):
        response = deliver(body := _event_body(event_type, obj, **top), sign(body))
    assert response.status_code == 200, response.content
    event = StripeEvent.objects.order_by("-received_at").first()
    assert event is not None
    return event


# --- production refuses a demo webhook secret -------------------------------------------------


def _manage_check(command: str = "check", **environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "payments.example.com",
        "DATABASE_URL": "postgres://payments:pw@db.internal:5432/payments",
        "REDIS_URL": "redis://cache.internal:6379/0",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", command, *(["--noinput", "-v", "0"] if command == "collectstatic" else [])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("secret", [None, "whsec_local"])
def test_production_when_webhook_secret_missing_or_demo_then_refuses_to_start(secret):
    extra = {} if secret is None else {"STRIPE_WEBHOOK_SECRET": secret}

    result = _manage_check(**extra)

    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET" in result.stderr


def test_production_when_webhook_secret_real_then_starts(tmp_path: Path) -> None:
    # Static files collected as the image does (else config.E010 would stop the start, rightly).
    static = {"STATIC_ROOT": str(tmp_path / "static")}
    collected = _manage_check(STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(16), **static, command="collectstatic")
    assert collected.returncode == 0, collected.stderr

    result = _manage_check(STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(16), **static)

    assert result.returncode == 0, result.stderr


# --- what an event proves ----------------------------------------------------------------------


def test_event_when_livemode_not_ours_then_recorded_and_ignored(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    payment.stripe_payment_intent_id = intent.id
    payment.save(update_fields=["stripe_payment_intent_id"])

    event = _deliver(django_capture_on_commit_callbacks, "payment_intent.succeeded", intent, livemode=True)

    assert event.status == "ignored" and "livemode" in event.last_error
    assert Payment.objects.get(pk=payment.pk).status == "processing"
    assert _balance(customer) == 0


def test_event_when_account_not_ours_then_recorded_and_ignored(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    payment.stripe_payment_intent_id = intent.id
    payment.save(update_fields=["stripe_payment_intent_id"])

    event = _deliver(django_capture_on_commit_callbacks, "payment_intent.succeeded", intent, account="acct_other")

    assert event.status == "ignored" and "account" in event.last_error
    assert _balance(customer) == 0


def test_event_when_stripe_does_not_know_the_intent_then_metadata_never_credits(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    forged = {**dict(intent), "id": "pi_forged000000000000000000"}  # signed, but Stripe has no such object

    _deliver(django_capture_on_commit_callbacks, "payment_intent.succeeded", forged)

    payment.refresh_from_db()
    assert payment.status == "processing" and payment.stripe_payment_intent_id is None
    assert _balance(customer) == 0


def test_event_when_stripe_404_and_not_the_local_fake_then_body_not_trusted(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks, monkeypatch
):
    order = _card_order(fake_stripe, customer, merchant)
    monkeypatch.setattr(gateway, "using_local_fake", lambda: False)

    event = _deliver(django_capture_on_commit_callbacks, "charge.dispute.created", _dispute_object(order))

    assert StripeEvent.objects.get(pk=event.pk).status == "failed"
    assert not Dispute.objects.exists()


def test_intent_when_amount_differs_from_our_payment_then_flagged_and_nothing_moves(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    payment, _ = _charged_deposit_unseen(fake_stripe, customer, amount=2500)
    other = stripe.PaymentIntent.create(
        amount=99,
        currency="usd",
        customer=customer.stripe_customer.stripe_customer_id,
        payment_method=fake_stripe.attach_card(customer),
        confirm=True,
        metadata={"payment_id": payment.pk, "kind": "deposit"},
    )

    _deliver(django_capture_on_commit_callbacks, "payment_intent.succeeded", other)

    payment.refresh_from_db()
    assert payment.status == "processing"
    assert "amount" in payment.flagged_reason and payment.flagged_at is not None
    assert Deposit.objects.get(payment=payment).status == "pending"
    assert _balance(customer) == 0


# --- Stripe changing its mind: refunds ---------------------------------------------------------


def test_refund_when_failed_after_succeeding_then_reversed_and_order_paid_again(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    merchant_before = _balance(merchant)
    response = client_for(merchant).post("/api/v1/refunds", {"order": order.pk}, format="json")
    assert response.status_code == 201, response.content
    refund = Refund.objects.get()
    assert refund.status == "succeeded" and Order.objects.get(pk=order.pk).status == "refunded"

    again = {"id": refund.stripe_refund_id, "status": "failed", "amount": refund.amount, "currency": "usd"}
    refund_finish(refund_id=refund.pk, stripe_refund=again)
    refund_finish(refund_id=refund.pk, stripe_refund=again)  # a duplicate changes nothing

    refund.refresh_from_db()
    assert refund.status == "failed"
    assert Payment.objects.get(pk=order.payment_id).amount_refunded == 0
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert _balance(merchant) == merchant_before
    assert Entry.objects.filter(reference=refund.pk).count() == 2
    assert verify()[0] == 0


def test_refund_made_in_stripe_dashboard_then_recorded_as_external_and_order_follows(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    order = _card_order(fake_stripe, customer, merchant)
    payment = Payment.objects.get(pk=order.payment_id)
    assert payment.stripe_payment_intent_id is not None
    outside = stripe.Refund.create(payment_intent=payment.stripe_payment_intent_id, amount=400)
    charge = stripe.Charge.retrieve(payment.stripe_charge_id)

    _deliver(django_capture_on_commit_callbacks, "charge.refunded", charge)
    _deliver(django_capture_on_commit_callbacks, "charge.refunded", charge)  # another delivery: once

    refund = Refund.objects.get()
    assert refund.external and refund.stripe_refund_id == outside.id and refund.amount == 400
    assert refund.status == "succeeded" and refund.requested_by is None
    assert Order.objects.get(pk=order.pk).status == "partially_refunded"

    rest = stripe.Refund.create(payment_intent=payment.stripe_payment_intent_id, amount=600)
    _deliver(django_capture_on_commit_callbacks, "charge.refund.updated", rest)

    assert Refund.objects.filter(external=True).count() == 2
    assert Order.objects.get(pk=order.pk).status == "refunded"
    assert Payment.objects.get(pk=payment.pk).amount_refunded == 1000
    assert verify()[0] == 0


# --- Stripe changing its mind: disputes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "status", "ours"),
    [
        ("charge.dispute.closed", "warning_closed", "warning_closed"),
        ("charge.dispute.funds_reinstated", "under_review", "won"),
        ("charge.dispute.updated", "charge_refunded", "won"),
    ],
)
def test_dispute_when_closed_without_loss_then_hold_released(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks, event_type, status, ours
):
    order = _card_order(fake_stripe, customer, merchant)
    dispute = _open_dispute(order, django_capture_on_commit_callbacks)
    assert _wallet(merchant)[1] == 950
    closed = {**_dispute_object(order), "id": dispute.stripe_dispute_id, "status": status}

    _deliver(django_capture_on_commit_callbacks, event_type, closed)

    dispute.refresh_from_db()
    assert dispute.status == ours
    assert _wallet(merchant) == (950, 0)
    assert verify()[0] == 0


def test_dispute_when_funds_withdrawn_then_hold_stays_until_it_ends(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    order = _card_order(fake_stripe, customer, merchant)
    dispute = _open_dispute(order, django_capture_on_commit_callbacks)
    withdrawn = {**_dispute_object(order), "id": dispute.stripe_dispute_id, "status": "needs_response"}

    _deliver(django_capture_on_commit_callbacks, "charge.dispute.funds_withdrawn", withdrawn)
    assert Dispute.objects.get(pk=dispute.pk).status == "open"
    _deliver(django_capture_on_commit_callbacks, "charge.dispute.closed", {**withdrawn, "status": "lost"})

    assert Dispute.objects.get(pk=dispute.pk).status == "lost"
    assert _wallet(merchant)[1] == 0
    assert verify()[0] == 0
