"""Disputes (webhook → hold, staff resolve in the admin), staff refunds and event replay in the admin."""

from __future__ import annotations

import time
import uuid

import pytest
import stripe
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from payments.models import Dispute, Payment, Refund, StripeEvent
from tests.backoffice.conftest import user_in_role
from tests.conftest import client_for
from tests.payments.test_refunds import _card_order
from tests.payments.test_webhooks import deliver, event_body, sign
from tests.wallets.conftest import verify
from wallets.models import Account

pytestmark = pytest.mark.stripe


def _wallet(user) -> tuple[int, int]:
    account = Account.objects.get(owner=user)
    return account.balance, account.held


def _dispute_object(order, status="needs_response", amount=None) -> dict:
    payment = Payment.objects.get(pk=order.payment_id)
    return {
        "id": f"dp_{uuid.uuid4().hex[:14]}",
        "object": "dispute",
        "amount": amount or order.amount,
        "currency": "usd",
        "charge": payment.stripe_charge_id,
        "payment_intent": payment.stripe_payment_intent_id,
        "reason": "fraudulent",
        "status": status,
        "created": int(time.time()),
        "livemode": False,
    }


def _admin(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _confirmed(client: Client, url: str, action: str, pk: str, reason: str = "checked with the bank", **kw):
    """The admin's money action as staff take it: the action, its confirmation page, then confirmed with a reason."""
    page = client.post(url, {"action": action, "_selected_action": [pk]})
    assert page.status_code == 200 and b"confirm-money-action" in page.content and b'name="reason"' in page.content
    return client.post(url, {"action": action, "_selected_action": [pk], "apply": "1", "reason": reason}, **kw)


def _open_dispute(order, capture) -> Dispute:
    with capture(execute=True):
        response = deliver(body := event_body("charge.dispute.created", _dispute_object(order)), sign(body))
    assert response.status_code == 200
    return Dispute.objects.get(payment_id=order.payment_id)


def test_dispute_created_then_merchant_net_held(fake_stripe, customer, merchant, django_capture_on_commit_callbacks):
    order = _card_order(fake_stripe, customer, merchant)

    dispute = _open_dispute(order, django_capture_on_commit_callbacks)

    assert dispute.status == "open" and dispute.amount == 1000 and dispute.held_amount == 950
    assert _wallet(merchant) == (0, 950)
    assert client_for(merchant).get("/api/v1/wallet").json() == {
        "balance": 0,
        "withdrawable": 0,
        "pending": 950,
        "incoming": 0,
        "currency": "usd",
    }
    assert StripeEvent.objects.get().status == "processed"
    assert verify()[0] == 0


def test_dispute_when_merchant_short_then_what_there_is_is_held(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    order = _card_order(fake_stripe, customer, merchant)
    assert client_for(merchant).post("/api/v1/wallet/withdrawals", {"amount": 900}, format="json").status_code == 201

    dispute = _open_dispute(order, django_capture_on_commit_callbacks)

    assert dispute.held_amount == 50
    assert _wallet(merchant) == (0, 950)  # 900 held by the withdrawal, 50 by the dispute
    assert verify()[0] == 0


def test_dispute_won_in_admin_then_released_and_audited(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    staff = user_in_role("finance")
    order = _card_order(fake_stripe, customer, merchant)
    dispute = _open_dispute(order, django_capture_on_commit_callbacks)

    response = _confirmed(_admin(staff), reverse("admin:payments_dispute_changelist"), "resolve_won", dispute.pk)

    assert response.status_code == 302
    dispute.refresh_from_db()
    assert dispute.status == "won" and dispute.resolved_by == staff
    assert _wallet(merchant) == (950, 0)
    assert AuditEvent.objects.filter(action="dispute.won", object_id=dispute.pk, actor=staff).exists()
    assert verify()[0] == 0


def test_dispute_lost_in_admin_then_amount_leaves_through_card_clearing(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    from django.db.models import Sum

    from wallets.models import Posting

    staff = user_in_role("finance")
    order = _card_order(fake_stripe, customer, merchant)
    dispute = _open_dispute(order, django_capture_on_commit_callbacks)

    response = _confirmed(_admin(staff), reverse("admin:payments_dispute_changelist"), "resolve_lost", dispute.pk)

    assert response.status_code == 302
    dispute.refresh_from_db()
    assert dispute.status == "lost" and dispute.resolved_by == staff
    assert _wallet(merchant) == (0, 0)
    clearing = Posting.objects.filter(account_id="acc_card_clearing_usd").aggregate(total=Sum("amount"))["total"]
    assert clearing == 0  # charged -1000, gone back +1000
    fees = Posting.objects.filter(account_id="acc_platform_fees_usd").aggregate(total=Sum("amount"))["total"]
    assert fees == 0
    assert AuditEvent.objects.filter(action="dispute.lost", object_id=dispute.pk, actor=staff).exists()
    assert verify()[0] == 0


def test_dispute_closed_won_event_then_released_once(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    order = _card_order(fake_stripe, customer, merchant)
    opened = _dispute_object(order)
    closed = {**opened, "status": "won"}

    with django_capture_on_commit_callbacks(execute=True):
        # Out of order: the close arrives first, then the creation.
        deliver(body := event_body("charge.dispute.closed", closed), sign(body))
        deliver(body := event_body("charge.dispute.created", opened), sign(body))

    dispute = Dispute.objects.get()
    assert dispute.status == "won"
    assert _wallet(merchant) == (950, 0)
    assert verify()[0] == 0


def test_admin_partial_refund_form_then_refunded_through_stripe_and_audited(fake_stripe, customer, merchant, staff):
    order = _card_order(fake_stripe, customer, merchant)
    admin = _admin(staff)
    url = reverse("admin:payments_payment_refund", args=[order.payment_id])

    page = admin.get(url)
    response = admin.post(url, {"amount": "250", "reason": "late delivery"})

    assert page.status_code == 200 and b"Refund" in page.content
    assert response.status_code == 302, response.content[:500]
    refund = Refund.objects.get(payment_id=order.payment_id)
    assert (refund.amount, refund.status, refund.requested_by) == (250, "succeeded", staff)
    assert refund.stripe_refund_id is not None
    assert stripe.Refund.retrieve(refund.stripe_refund_id).amount == 250
    assert AuditEvent.objects.filter(action="refund.create", object_id=refund.pk, actor=staff).exists()


def test_admin_refund_in_full_action_then_order_refunded(fake_stripe, customer, merchant):
    staff = user_in_role("support")
    order = _card_order(fake_stripe, customer, merchant)
    assert order.payment_id is not None

    response = _confirmed(
        _admin(staff), reverse("admin:payments_payment_changelist"), "refund_in_full", order.payment_id,
        reason="customer asked",
    )  # fmt: skip

    assert response.status_code == 302

    order.refresh_from_db()
    assert order.status == "refunded"
    assert Payment.objects.get(pk=order.payment_id).amount_refunded == 1000
    assert _wallet(merchant) == (0, 0)


def test_admin_replay_when_event_failed_then_processed(
    fake_stripe, customer, merchant, django_capture_on_commit_callbacks
):
    staff = user_in_role("finance")
    order = _card_order(fake_stripe, customer, merchant)
    with fake_stripe.unreachable(), django_capture_on_commit_callbacks(execute=True):
        deliver(body := event_body("charge.dispute.created", _dispute_object(order)), sign(body))
    event = StripeEvent.objects.get()
    assert event.status == "failed" and event.last_error
    assert not Dispute.objects.exists()
    changelist = _admin(staff).get(reverse("admin:payments_stripeevent_changelist"), {"status__exact": "failed"})
    assert event.pk.encode() in changelist.content

    response = _confirmed(_admin(staff), reverse("admin:payments_stripeevent_changelist"), "replay", event.pk)

    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == "processed"
    assert Dispute.objects.get().held_amount == 950


def test_admin_customer_search_by_email_then_found(fake_stripe, customer, staff):
    customer_id = client_for(customer).post("/api/v1/payment-methods/setup-intent").status_code
    assert customer_id == 200

    djstripe_page = _admin(staff).get(reverse("admin:djstripe_customer_changelist"), {"q": customer.email})
    ours = _admin(staff).get(reverse("admin:payments_stripecustomer_changelist"), {"q": customer.email})

    stripe_id = customer.stripe_customer.stripe_customer_id
    assert djstripe_page.status_code == 200 and stripe_id.encode() in djstripe_page.content
    assert ours.status_code == 200 and stripe_id.encode() in ours.content


def test_admin_payment_page_when_order_paid_then_offers_refund(fake_stripe, customer, merchant, staff):
    order = _card_order(fake_stripe, customer, merchant)

    page = _admin(staff).get(reverse("admin:payments_payment_change", args=[order.payment_id]))
    listing = _admin(staff).get(reverse("admin:payments_payment_changelist"), {"q": customer.email})

    assert page.status_code == 200
    assert reverse("admin:payments_payment_refund", args=[order.payment_id]).encode() in page.content
    assert order.payment_id is not None and order.payment_id.encode() in listing.content


def test_admin_refund_form_when_not_staff_then_no_access(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    client = Client()
    client.force_login(merchant)

    response = client.post(reverse("admin:payments_payment_refund", args=[order.payment_id]), {"amount": "100"})

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not Refund.objects.exists()
