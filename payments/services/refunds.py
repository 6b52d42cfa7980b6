"""Refunds: reserving one under lock, asking Stripe for a card refund, and settling Stripe's answer.

Locks: the owner (the order, through ``payments.hooks``) → Payment → Refund → wallet accounts (``ledger_post``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from config import metrics
from config.db import retry_on_contention
from config.errors import AlreadyRefunded, InvalidStatus, NotFound, RefundExceedsPayment
from payments import gateway
from payments.errors import is_unavailable, translate_stripe_error
from payments.hooks import hooks_for, refund_hooks_for
from payments.locks import lock_payment, lock_refund
from payments.models import PaymentKind, PaymentMethodType, PaymentStatus, Refund, RefundStatus
from payments.stripe_data import as_mapping
from wallets.ledger import Leg, ledger_post
from wallets.models import EntryKind


def refund_key(refund_id: str) -> str:
    """The ledger key of a refund's reversal: one per refund, ever."""
    return f"refund:{refund_id}"


def refund_release_key(refund_id: str) -> str:
    """The ledger key that undoes a refund's reversal when Stripe refused the refund."""
    return f"refund-failed:{refund_id}"


def refund_create(*, order_id: str, amount: int | None, reason: str, requested_by: User) -> Refund:
    """Refunds an order fully (``amount`` None: what is left) or partly; call outside a transaction.

    Wallet payment: the money goes back to the buyer's wallet in one
    transaction. Card payment: the amount is reserved and the reversal posted
    under lock, committed, then Stripe is asked (idempotency key from the
    refund id); a refusal releases both. Either way the merchant's net and the
    platform fee are reversed proportionally (the order's hooks say how).
    Locks: Order → Payment → Refund → wallet accounts. Raises NotFound,
    PermissionDeniedError, InvalidStatus, AlreadyRefunded, RefundExceedsPayment,
    InsufficientFunds (merchant), and for cards CardDeclined/StripeUnavailable
    (the latter leaves it pending).
    """
    refunds = refund_hooks_for(PaymentKind.ORDER)
    order = refunds.find(order_id)
    if order is None:
        raise NotFound("No such order.", param="order")
    refunds.check_refunder(order, requested_by)
    refund = _refund_reserve(order_id=order_id, amount=amount, reason=reason, requested_by=requested_by)
    if refund.status != RefundStatus.PENDING:
        return refund
    return refund_at_stripe(refund_id=refund.pk)


@retry_on_contention()
def _refund_reserve(*, order_id: str, amount: int | None, reason: str, requested_by: User) -> Refund:
    refunds = refund_hooks_for(PaymentKind.ORDER)
    with transaction.atomic():
        order, payment_id = refunds.lock_refundable(order_id)
        payment = lock_payment(payment_id)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise InvalidStatus(f"Payment {payment.pk} is {payment.status}; only succeeded payments can be refunded.")
        left = payment.amount - payment.amount_refunded
        if left <= 0:
            raise AlreadyRefunded(f"Order {order.pk} is already fully refunded.")
        amount = left if amount is None else amount
        if amount > left:
            raise RefundExceedsPayment(f"Only {left} of {payment.amount} is left to refund.", param="amount")
        fee_part, net_part = refunds.parts(order, payment, amount)
        is_wallet = payment.method == PaymentMethodType.WALLET
        now = timezone.now()
        refund = Refund(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            status=RefundStatus.SUCCEEDED if is_wallet else RefundStatus.PENDING,
            reason=reason[:255],
            requested_by=requested_by,
            fee_reversed=fee_part,
            net_reversed=net_part,
            created_at=now,
            updated_at=now,
        )
        refund.save(force_insert=True)
        metrics.count_refund_on_commit(outcome=refund.status)
        payment.amount_refunded += amount
        payment.updated_at = now
        payment.save(update_fields=["amount_refunded", "updated_at"])
        # Raises InsufficientFunds when the merchant cannot give the net back: all of this rolls back.
        ledger_post(
            kind=EntryKind.REFUND,
            currency=payment.currency,
            reference=refund.pk,
            idempotency_key=refund_key(refund.pk),
            memo=f"order {order.pk}",
            legs=refunds.legs(order, payment, amount, fee_part, net_part),
        )
        if requested_by.is_staff:
            audit_record(
                actor=requested_by,
                action="refund.create",
                object_type="refund",
                object_id=refund.pk,
                data={"order": order.pk, "amount": amount, "currency": payment.currency, "reason": reason[:255]},
            )
        if is_wallet:
            refunds.settled(order, payment)
    return refund


def refund_at_stripe(*, refund_id: str) -> Refund:
    """Asks Stripe for a reserved card refund (idempotency key from the refund id), then finishes it."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    try:
        stripe_refund = gateway.raw_call(
            stripe.Refund.create,
            payment_intent=refund.payment.stripe_payment_intent_id,
            amount=refund.amount,
            metadata={"refund_id": refund.pk, "payment_id": refund.payment_id},
            idempotency_key=f"refund-{refund.pk}",
        )
    except stripe.StripeError as exc:
        error = translate_stripe_error(exc)
        if is_unavailable(exc):
            raise error from exc  # stays pending: reconcile_payments asks again with the same key
        refund_finish(refund_id=refund.pk, stripe_refund=None, failure=str(getattr(exc, "user_message", "") or exc))
        raise error from exc
    return refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)


@retry_on_contention()
def refund_finish(*, refund_id: str, stripe_refund: Any, failure: str = "") -> Refund:
    """Applies Stripe's answer to a pending card refund; idempotent.

    ``succeeded`` (or Stripe's ``pending``, which card refunds settle from):
    the owner learns it through its ``settled`` hook. ``failed``/``canceled``
    or a refusal (``stripe_refund`` None): the reservation and the reversal are
    released. Locks: Order → Payment → Refund → wallet accounts.
    """
    payment_id, kind = Refund.objects.values_list("payment_id", "payment__kind").get(pk=refund_id)
    hooks = hooks_for(kind)
    refunds = refund_hooks_for(kind)
    with transaction.atomic():
        owner = hooks.lock_owner(payment_id)
        payment = lock_payment(payment_id)
        refund = lock_refund(refund_id)
        if refund.status != RefundStatus.PENDING:
            return refund
        stripe_status = (stripe_refund or {}).get("status")
        if stripe_refund is not None and stripe_refund.get("id") and not refund.stripe_refund_id:
            refund.stripe_refund_id = stripe_refund["id"]
        now = timezone.now()
        if stripe_status in ("succeeded", "pending", "requires_action"):
            if stripe_status != "succeeded":
                refund.updated_at = now
                refund.save(update_fields=["stripe_refund_id", "updated_at"])
                return refund
            refund.status = RefundStatus.SUCCEEDED
            refund.updated_at = now
            refund.save(update_fields=["status", "stripe_refund_id", "updated_at"])
            metrics.count_refund_on_commit(outcome=refund.status)
            if owner is not None:
                refunds.settled(owner, payment)
            return refund
        # Refused, failed or canceled: give back what was reserved and reversed.
        refund.status = RefundStatus.FAILED
        refund.failure_message = (failure or str((stripe_refund or {}).get("failure_reason") or "refund failed"))[:255]
        refund.updated_at = now
        refund.save(update_fields=["status", "stripe_refund_id", "failure_message", "updated_at"])
        metrics.count_refund_on_commit(outcome=refund.status)
        payment.amount_refunded -= refund.amount
        payment.updated_at = now
        payment.save(update_fields=["amount_refunded", "updated_at"])
        if owner is not None:
            legs = refunds.legs(owner, payment, refund.amount, refund.fee_reversed, refund.net_reversed)
            ledger_post(
                kind=EntryKind.ADJUSTMENT,
                currency=refund.currency,
                reference=refund.pk,
                idempotency_key=refund_release_key(refund.pk),
                memo=f"refund {refund.pk} refused by Stripe: reversal undone",
                legs=[Leg(leg.account_id, -leg.amount) for leg in legs],
            )
        return refund


def stripe_refund_find(refund: Refund) -> Mapping[str, Any] | None:
    """Stripe's refund made for ours (matched by metadata) when its answer never reached us."""
    intent_id = refund.payment.stripe_payment_intent_id
    if not intent_id:
        return None
    listed: Any = gateway.raw_call(stripe.Refund.list, payment_intent=intent_id, limit=100)
    for candidate in listed.data:
        if (candidate.get("metadata") or {}).get("refund_id") == refund.pk:
            return as_mapping(candidate)
    return None
