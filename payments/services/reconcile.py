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
from payments.models import Payment, PaymentMethodType, PaymentStatus, Refund, RefundStatus, StripeCustomer
from payments.services.charges import intent_create_params, payment_sync, stripe_key
from payments.services.refunds import refund_at_stripe, refund_finish, stripe_refund_find
from payments.stripe_data import mirror_intent

logger = logging.getLogger(__name__)


def payment_reconcile(*, payment_id: str) -> Payment:
    """Settles a card payment left in flight by asking Stripe; call outside a transaction.

    No intent recorded (our create call's answer was lost): Stripe is asked for the one that call made
    (``intent_unlearned_find``); none means nothing was charged and the payment is canceled. An intent
    never confirmed is canceled at Stripe, so no orphan is left there. Otherwise Stripe's state is
    applied with ``payment_sync``. Raises ``stripe.StripeError`` when Stripe cannot answer (tried again
    on the next run).
    """
    payment = Payment.objects.get(pk=payment_id)
    if payment.status in FINAL_STATUSES:
        return payment
    intent: Any
    if payment.stripe_payment_intent_id:
        intent = gateway.raw_call(stripe.PaymentIntent.retrieve, payment.stripe_payment_intent_id)
    else:
        intent = intent_unlearned_find(payment)
        if intent is None:
            return payment_sync(payment_id=payment.pk, intent={"status": "canceled"})
    if intent.get("status") == "requires_confirmation":
        intent = gateway.raw_call(stripe.PaymentIntent.cancel, intent.id, idempotency_key=stripe_key(payment, "cancel"))
    payment = payment_sync(payment_id=payment.pk, intent=intent)
    mirror_intent(intent)
    return payment


# Stripe keeps an idempotency key's result for at least 24 hours: inside this, our create is sent again.
IDEMPOTENCY_WINDOW = timedelta(hours=23)


def intent_unlearned_find(payment: Payment) -> Any | None:
    """The PaymentIntent our create call made for ``payment`` although its answer never reached us, or None.

    The create is sent again with the same parameters and idempotency key: Stripe answers the intent the
    first call made (read again, as it is now), or, when that call never ran, makes one now, unconfirmed
    (it charges nobody and ``payment_reconcile`` cancels it). After the key's 24 hours (or if Stripe says
    the key was used otherwise) Stripe's search finds it by our metadata instead; by then its index has
    caught up.
    None: no create was ever sent (the payment never got its card or customer), or none is found.
    """
    customer_id = (
        StripeCustomer.objects.filter(user_id=payment.user_id).values_list("stripe_customer_id", flat=True).first()
    )
    if not payment.stripe_payment_method_id or not customer_id:
        return None  # the create needs both; a payment without them was never sent to Stripe
    if timezone.now() - payment.created_at < IDEMPOTENCY_WINDOW:
        params = intent_create_params(payment, customer_id=customer_id, card_id=payment.stripe_payment_method_id)
        try:
            key = stripe_key(payment, "create")
            answered: Any = gateway.raw_call(stripe.PaymentIntent.create, **params, idempotency_key=key)
            # A replay is the first call's answer as it was then: read the intent as it is now.
            return gateway.raw_call(stripe.PaymentIntent.retrieve, answered.id)
        except stripe.IdempotencyError as exc:
            if exc.http_status == 409:
                raise  # the first call is still running at Stripe: ask again on the next run
            logger.warning("reconcile: the create's idempotency key was used otherwise", extra={"payment": payment.pk})
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 400:
                raise
            # Refused now (the card detached since, say): so the first call made nothing, or its answer
            # would have been replayed.
            return None
    found: Any = gateway.raw_call(stripe.PaymentIntent.search, query=f"metadata['payment_id']:'{payment.pk}'", limit=10)
    for intent in found.data:
        if (intent.get("metadata") or {}).get("payment_id") == payment.pk:
            return intent
    return None


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
