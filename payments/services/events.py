"""Stripe events: which types the platform applies, their handlers, and applying one claimed event once.

Handlers take no lock themselves; the services they call take theirs. Call outside a transaction.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import stripe
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config import metrics
from payments import gateway
from payments.models import Dispute, DisputeStatus, Payment, Refund, StripeEvent, StripeEventStatus
from payments.services.charges import payment_flag, payment_sync
from payments.services.disputes import dispute_open, dispute_resolve
from payments.services.refunds import refund_finish, stripe_refunds_apply
from payments.stripe_data import as_mapping, mirror_intent, object_id

logger = logging.getLogger(__name__)


def event_not_ours(data: Mapping[str, Any]) -> str:
    """Why a signed event is not for this platform (another mode or account); empty when it is ours."""
    if bool(data.get("livemode")) != bool(settings.STRIPE_LIVE_MODE):
        return f"livemode {bool(data.get('livemode'))} is not ours"
    account = data.get("account")
    if account and account != settings.STRIPE_ACCOUNT_ID:
        return f"account {account} is not ours"
    return ""


def _payment_for_intent(intent: Mapping[str, Any], *, confirmed: bool) -> Payment | None:
    """Our payment of a PaymentIntent: by the intent id we recorded. The metadata's payment id is used
    only for a payment that never learned its intent (our create call timed out), and only once Stripe
    itself answered with the object (``confirmed``): a delivered body alone never names our payment."""
    payment = Payment.objects.filter(stripe_payment_intent_id=intent.get("id")).first()
    if payment is not None:
        return payment
    payment_id = (intent.get("metadata") or {}).get("payment_id")
    if not payment_id or not confirmed:
        return None
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None or payment.stripe_payment_intent_id:
        return None
    return payment


def stripe_object(fn: Callable[..., Any], object_id: str, payload: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """Stripe's current view of an object (events may arrive in any order) and True; against the local fake
    only, the signed payload and False when the fake does not know the object (it has no disputes)."""
    try:
        return as_mapping(gateway.raw_call(fn, object_id)), True
    except stripe.StripeError as exc:
        if exc.http_status == 404 and gateway.using_local_fake():
            return payload, False
        raise


def _retrieve_or_payload(fn: Callable[..., Any], object_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    return stripe_object(fn, object_id, payload)[0]


def _on_payment_intent_event(event: StripeEvent) -> None:
    intent, confirmed = stripe_object(stripe.PaymentIntent.retrieve, event.object_id, event.payload)
    payment = _payment_for_intent(intent, confirmed=confirmed)
    if payment is None:
        logger.info("payment intent event for no payment of ours", extra={"event_id": event.pk})
        return
    payment_sync(payment_id=payment.pk, intent=intent)
    mirror_intent(intent)


def _payment_for_charge(charge: Mapping[str, Any]) -> Payment | None:
    payment = Payment.objects.filter(stripe_charge_id=charge.get("id")).first() if charge.get("id") else None
    intent_id = object_id(charge.get("payment_intent"))
    if payment is None and intent_id:
        payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first()
    return payment


def _on_charge_refunded_event(event: StripeEvent) -> None:
    """Every refund Stripe lists for the charge's intent is applied: ours finished (or reversed), one made
    outside the platform recorded as an external refund."""
    charge = _retrieve_or_payload(stripe.Charge.retrieve, event.object_id, event.payload)
    payment = _payment_for_charge(charge)
    if payment is None:
        return
    stripe_refunds_apply(payment_id=payment.pk)


def _on_refund_updated_event(event: StripeEvent) -> None:
    stripe_refund = _retrieve_or_payload(stripe.Refund.retrieve, event.object_id, event.payload)
    refund = Refund.objects.filter(stripe_refund_id=stripe_refund.get("id")).first()
    if refund is None:
        refund_id = (stripe_refund.get("metadata") or {}).get("refund_id")
        refund = Refund.objects.filter(pk=refund_id).first() if refund_id else None
    if refund is not None:
        refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)
        return
    intent_id = object_id(stripe_refund.get("payment_intent"))
    payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first() if intent_id else None
    if payment is not None:  # not ours: made in Stripe's dashboard
        stripe_refunds_apply(payment_id=payment.pk)


def _dispute_payment(dispute: Mapping[str, Any]) -> Payment | None:
    charge_id = object_id(dispute.get("charge"))
    intent_id = object_id(dispute.get("payment_intent"))
    payment = Payment.objects.filter(stripe_charge_id=charge_id).first() if charge_id else None
    if payment is None and intent_id:
        payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first()
    if payment is None and charge_id:
        stripe_charge = _retrieve_or_payload(stripe.Charge.retrieve, str(charge_id), {})
        payment = _payment_for_charge(stripe_charge) if stripe_charge else None
    return payment


def _on_dispute_event(event: StripeEvent) -> None:
    dispute_data = _retrieve_or_payload(stripe.Dispute.retrieve, event.object_id, event.payload)
    payment = _dispute_payment(dispute_data)
    if payment is None:
        logger.info("dispute for no payment of ours", extra={"event_id": event.pk})
        return
    dispute = dispute_open(
        payment_id=payment.pk,
        stripe_dispute_id=str(dispute_data.get("id") or event.object_id),
        amount=int(dispute_data.get("amount") or payment.amount),
        reason=str(dispute_data.get("reason") or ""),
    )
    currency = str(dispute_data.get("currency") or payment.currency).lower()
    if currency != payment.currency:
        payment_flag(payment=payment, reason=f"dispute currency: ours {payment.currency}, Stripe's {currency}")
        return
    outcome = dispute_outcome(event.type, str(dispute_data.get("status") or ""))
    if outcome is not None and Dispute.objects.filter(pk=dispute.pk, status=DisputeStatus.OPEN).exists():
        dispute_resolve(dispute_id=dispute.pk, outcome=outcome, actor=None)


# Stripe's final dispute statuses and what they do to the hold. ``charge_refunded``: the charge was
# refunded to end it, and the refund itself moves the money, so the hold is released.
_DISPUTE_FINAL = {
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "warning_closed": DisputeStatus.WARNING_CLOSED,
    "charge_refunded": DisputeStatus.WON,
}


def dispute_outcome(event_type: str, stripe_status: str) -> str | None:
    """How a dispute event ends our dispute (None: it stays open). Stripe's current status decides,
    whichever event brought it; ``funds_reinstated`` gives the money back; ``funds_withdrawn`` keeps the
    hold (the money left at Stripe, we hold the holder's part until the dispute ends)."""
    if stripe_status in _DISPUTE_FINAL:
        return _DISPUTE_FINAL[stripe_status]
    if event_type == "charge.dispute.funds_reinstated":
        return DisputeStatus.WON
    return None


# The event types the platform applies; any other is recorded ``ignored`` when it arrives.
EVENT_HANDLERS: dict[str, Callable[[StripeEvent], None]] = {
    "payment_intent.succeeded": _on_payment_intent_event,
    "payment_intent.payment_failed": _on_payment_intent_event,
    "payment_intent.canceled": _on_payment_intent_event,
    "payment_intent.processing": _on_payment_intent_event,
    "payment_intent.requires_action": _on_payment_intent_event,
    "charge.refunded": _on_charge_refunded_event,
    "charge.refund.updated": _on_refund_updated_event,
    "refund.created": _on_refund_updated_event,
    "refund.updated": _on_refund_updated_event,
    "refund.failed": _on_refund_updated_event,
    "charge.dispute.created": _on_dispute_event,
    "charge.dispute.updated": _on_dispute_event,
    "charge.dispute.closed": _on_dispute_event,
    "charge.dispute.funds_withdrawn": _on_dispute_event,
    "charge.dispute.funds_reinstated": _on_dispute_event,
}


def stripe_event_process(*, event_id: str) -> StripeEvent:
    """Applies one claimed Stripe event; a processed event is never applied again.

    Handlers re-read the object from Stripe and apply its current state with
    idempotent services, so duplicates and any delivery order end the same.
    A failure is recorded (status ``failed``, ``last_error``) and re-raised
    for the task to retry. Call outside a transaction.
    """

    event = StripeEvent.objects.get(pk=event_id)
    if event.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
        return event
    handler = EVENT_HANDLERS.get(event.type)
    started = metrics.stripe_event_apply_started()
    try:
        if handler is not None:
            handler(event)
    except Exception as exc:
        StripeEvent.objects.filter(pk=event_id).exclude(status=StripeEventStatus.PROCESSED).update(
            status=StripeEventStatus.FAILED,
            attempts=F("attempts") + 1,
            last_error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}",
        )
        metrics.count_stripe_event_on_commit(state="failed")
        raise
    StripeEvent.objects.filter(pk=event_id).update(
        status=StripeEventStatus.PROCESSED if handler else StripeEventStatus.IGNORED,
        attempts=F("attempts") + 1,
        last_error="",
        processed_at=timezone.now(),
    )
    metrics.count_stripe_event_applied(started=started, handled=handler is not None)
    event.refresh_from_db()
    return event
