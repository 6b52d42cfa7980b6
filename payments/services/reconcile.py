"""Reconciliation: settling card payments and refunds left in flight by asking Stripe for the truth.

Call outside a transaction; each settlement takes the locks of ``payment_sync`` or ``refund_finish``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import stripe
from django.conf import settings
from django.utils import timezone

from payments import gateway
from payments.models import FINAL_PAYMENT_STATUSES as FINAL_STATUSES
from payments.models import Payment, PaymentMethodType, PaymentStatus, Refund, RefundStatus
from payments.services.charges import payment_sync
from payments.services.refunds import refund_at_stripe, refund_finish, stripe_refund_find
from payments.stripe_data import mirror_intent

logger = logging.getLogger(__name__)


def payment_reconcile(*, payment_id: str) -> Payment:
    """Settles a card payment left in flight by asking Stripe; call outside a transaction.

    No intent recorded: it was never confirmed, so nothing was charged and the
    payment is canceled. An intent never confirmed is canceled at Stripe.
    Otherwise Stripe's state is applied with ``payment_sync``.
    """
    payment = Payment.objects.get(pk=payment_id)
    if payment.status in FINAL_STATUSES:
        return payment
    if not payment.stripe_payment_intent_id:
        return payment_sync(payment_id=payment.pk, intent={"status": "canceled"})
    intent: Any = gateway.raw_call(stripe.PaymentIntent.retrieve, payment.stripe_payment_intent_id)
    if intent.get("status") == "requires_confirmation":
        intent = gateway.raw_call(stripe.PaymentIntent.cancel, intent.id, idempotency_key=f"pi-cancel-{payment.pk}")
    payment = payment_sync(payment_id=payment.pk, intent=intent)
    mirror_intent(intent)
    return payment


def refund_reconcile(*, refund_id: str) -> Refund:
    """Settles a pending card refund: asks Stripe again with the same idempotency key, or re-reads it."""

    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.stripe_refund_id:
        return refund_finish(
            refund_id=refund.pk, stripe_refund=gateway.raw_call(stripe.Refund.retrieve, refund.stripe_refund_id)
        )
    found = stripe_refund_find(refund)
    if found is not None:
        return refund_finish(refund_id=refund.pk, stripe_refund=found)
    return refund_at_stripe(refund_id=refund.pk)


def payments_reconcile(*, min_age_seconds: int | None = None) -> dict[str, int]:
    """Settles every card payment and refund in flight for longer than ``min_age_seconds``."""

    age = settings.STRIPE_RECONCILE_AFTER_SECONDS if min_age_seconds is None else min_age_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    counts = {"payments": 0, "refunds": 0, "errors": 0}
    stuck = Payment.objects.filter(
        method=PaymentMethodType.CARD,
        status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION],
        updated_at__lte=cutoff,
    ).values_list("pk", flat=True)
    pending = Refund.objects.filter(status=RefundStatus.PENDING, updated_at__lte=cutoff).values_list("pk", flat=True)
    for kind, ids, reconcile in (
        ("payments", stuck, lambda pk: payment_reconcile(payment_id=pk)),
        ("refunds", pending, lambda pk: refund_reconcile(refund_id=pk)),
    ):
        for pk in list(ids[:500]):
            try:
                reconcile(pk)
                counts[kind] += 1
            except Exception:  # one stuck row never stops the others; it is tried again next run
                counts["errors"] += 1
                logger.warning("could not reconcile", extra={"kind": kind, "id": pk}, exc_info=True)
    return counts
