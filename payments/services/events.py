"""Stripe events: which types the platform applies, their handlers, and applying one claimed event once.

Handlers take no lock themselves; the services they call take theirs. Call outside a transaction.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import stripe
from django.db.models import F
from django.utils import timezone

from config import metrics
from payments import gateway
from payments.models import Dispute, DisputeStatus, Payment, Refund, RefundStatus, StripeEvent, StripeEventStatus
from payments.services.charges import payment_sync
from payments.services.disputes import dispute_open, dispute_resolve
from payments.services.refunds import refund_finish, stripe_refund_find
from payments.stripe_data import as_mapping, mirror_intent, object_id

logger = logging.getLogger(__name__)


def _payment_for_intent(intent: Mapping[str, Any]) -> Payment | None:
    payment = Payment.objects.filter(stripe_payment_intent_id=intent.get("id")).first()
    if payment is not None:
        return payment
    payment_id = (intent.get("metadata") or {}).get("payment_id")
    if not payment_id:
        return None
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None or payment.stripe_payment_intent_id not in (None, "", intent.get("id")):
        return None
    return payment


def _retrieve_or_payload(fn: Callable[..., Any], object_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Stripe's current view of an object (events may arrive in any order); the signed payload if Stripe
    does not know the object (the local fake has no disputes)."""
    try:
        return as_mapping(gateway.raw_call(fn, object_id))
    except stripe.StripeError as exc:
        if exc.http_status == 404:
            return payload
        raise


def _on_payment_intent_event(event: StripeEvent) -> None:
    intent = _retrieve_or_payload(stripe.PaymentIntent.retrieve, event.object_id, event.payload)
    payment = _payment_for_intent(intent)
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
    charge = _retrieve_or_payload(stripe.Charge.retrieve, event.object_id, event.payload)
    payment = _payment_for_charge(charge)
    if payment is None:
        return
    pending = Refund.objects.filter(payment=payment, status=RefundStatus.PENDING).select_related("payment")
    for refund in pending:
        if refund.stripe_refund_id:
            stripe_refund = _retrieve_or_payload(stripe.Refund.retrieve, str(refund.stripe_refund_id), {})
        else:
            stripe_refund = stripe_refund_find(refund) or {}
        if stripe_refund:
            refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)


def _on_refund_updated_event(event: StripeEvent) -> None:
    stripe_refund = _retrieve_or_payload(stripe.Refund.retrieve, event.object_id, event.payload)
    refund = Refund.objects.filter(stripe_refund_id=stripe_refund.get("id")).first()
    if refund is None:
        refund_id = (stripe_refund.get("metadata") or {}).get("refund_id")
        refund = Refund.objects.filter(pk=refund_id).first() if refund_id else None
    if refund is not None:
        refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)


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
    stripe_status = dispute_data.get("status")
    if event.type == "charge.dispute.closed" and stripe_status in ("won", "lost"):
        outcome = DisputeStatus.WON if stripe_status == "won" else DisputeStatus.LOST
        if Dispute.objects.filter(pk=dispute.pk, status=DisputeStatus.OPEN).exists():
            dispute_resolve(dispute_id=dispute.pk, outcome=outcome, actor=None)


# The event types the platform applies; any other is recorded ``ignored`` when it arrives.
EVENT_HANDLERS: dict[str, Callable[[StripeEvent], None]] = {
    "payment_intent.succeeded": _on_payment_intent_event,
    "payment_intent.payment_failed": _on_payment_intent_event,
    "payment_intent.canceled": _on_payment_intent_event,
    "payment_intent.processing": _on_payment_intent_event,
    "payment_intent.requires_action": _on_payment_intent_event,
    "charge.refunded": _on_charge_refunded_event,
    "charge.refund.updated": _on_refund_updated_event,
    "charge.dispute.created": _on_dispute_event,
    "charge.dispute.closed": _on_dispute_event,
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
