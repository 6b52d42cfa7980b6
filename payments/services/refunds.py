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
from accounts.roles import Perm, four_eyes_needed, staff_refund_check, staff_require
from accounts.services import audit_record
from config import metrics
from config.db import retry_on_contention
from config.errors import AlreadyRefunded, InsufficientFunds, InvalidStatus, NotFound, RefundExceedsPayment
from payments import gateway
from payments.errors import is_unavailable, translate_stripe_error
from payments.hooks import PaymentHooksMissing, hooks_for, refund_hooks_for
from payments.locks import lock_payment, lock_refund
from payments.models import Payment, PaymentKind, PaymentMethodType, PaymentStatus, Refund, RefundStatus
from payments.services.charges import payment_flag
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
    Staff: Support or Finance (``accounts.roles``), Support up to
    ``SUPPORT_REFUND_LIMIT``; at or above ``FOUR_EYES_THRESHOLD`` the refund is
    only recorded (``pending_approval``, nothing moves) until a second, different
    Finance user approves it (``refund_approvals.refund_approve``).
    Locks: Order → Payment → Refund → wallet accounts. Raises NotFound,
    PermissionDeniedError, InvalidStatus, AlreadyRefunded, RefundExceedsPayment,
    InsufficientFunds (merchant), and for cards CardDeclined/StripeUnavailable
    (the latter leaves it pending).
    """
    if requested_by.is_staff:
        staff_require(requested_by, Perm.REFUND)
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
        amount = refund_amount_check(payment, amount)
        by_staff = requested_by.is_staff
        if by_staff:
            staff_refund_check(requested_by, amount)
        now = timezone.now()
        refund = Refund(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            status=RefundStatus.PENDING_APPROVAL if by_staff and four_eyes_needed(amount) else RefundStatus.PENDING,
            reason=reason[:255],
            requested_by=requested_by,
            created_at=now,
            updated_at=now,
        )
        if refund.status == RefundStatus.PENDING_APPROVAL:
            refund.save(force_insert=True)
            audit_record(
                actor=requested_by,
                action="refund.request_approval",
                object_type="refund",
                object_id=refund.pk,
                data={"order": order.pk, "amount": amount, "currency": payment.currency, "reason": reason[:255]},
            )
            return refund
        refund_apply(order=order, payment=payment, refund=refund)
        if by_staff:
            audit_record(
                actor=requested_by,
                action="refund.create",
                object_type="refund",
                object_id=refund.pk,
                data={"order": order.pk, "amount": amount, "currency": payment.currency, "reason": reason[:255]},
            )
    return refund


def refund_amount_check(payment: Payment, amount: int | None) -> int:
    """The amount a new refund of ``payment`` may take (None: what is left). The caller holds the payment lock."""
    if payment.status != PaymentStatus.SUCCEEDED:
        raise InvalidStatus(f"Payment {payment.pk} is {payment.status}; only succeeded payments can be refunded.")
    left = payment.amount - payment.amount_refunded
    if left <= 0:
        raise AlreadyRefunded(f"Payment {payment.pk} is already fully refunded.")
    amount = left if amount is None else amount
    if amount > left:
        raise RefundExceedsPayment(f"Only {left} of {payment.amount} is left to refund.", param="amount")
    return amount


def refund_apply(*, order: Any, payment: Payment, refund: Refund) -> None:
    """Reserves ``refund`` on the payment and posts its reversal: a wallet refund is done (``succeeded``), a card
    one ``pending`` for Stripe. The caller holds Order → Payment (and the refund, if it exists) locks."""
    refunds = refund_hooks_for(PaymentKind.ORDER)
    fee_part, net_part = refunds.parts(order, payment, refund.amount)
    is_wallet = payment.method == PaymentMethodType.WALLET
    now = timezone.now()
    refund.status = RefundStatus.SUCCEEDED if is_wallet else RefundStatus.PENDING
    refund.fee_reversed = fee_part
    refund.net_reversed = net_part
    refund.updated_at = now
    refund.save()
    metrics.count_refund_on_commit(outcome=refund.status)
    payment.amount_refunded += refund.amount
    payment.updated_at = now
    payment.save(update_fields=["amount_refunded", "updated_at"])
    # Raises InsufficientFunds when the merchant cannot give the net back: all of this rolls back.
    ledger_post(
        kind=EntryKind.REFUND,
        currency=payment.currency,
        reference=refund.pk,
        idempotency_key=refund_key(refund.pk),
        memo=f"order {order.pk}",
        legs=refunds.legs(order, payment, refund.amount, fee_part, net_part),
    )
    if is_wallet:
        refunds.settled(order, payment)


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
    """Applies Stripe's answer to a card refund; idempotent.

    Pending refund: ``succeeded`` (or Stripe's ``pending``, which card refunds
    settle from) → the owner learns it through its ``settled`` hook;
    ``failed``/``canceled`` or a refusal (``stripe_refund`` None) → the
    reservation and the reversal are released. A refund that succeeded and
    that Stripe later reports ``failed``/``canceled`` (Stripe changed its mind)
    is reversed the same way, with a compensating ledger entry, and the owner's
    status follows. A Stripe refund whose amount or currency is not ours flags
    the payment and moves nothing. Locks: Order → Payment → Refund → wallet accounts.
    """
    payment_id, kind = Refund.objects.values_list("payment_id", "payment__kind").get(pk=refund_id)
    hooks = hooks_for(kind)
    refunds = refund_hooks_for(kind)
    with transaction.atomic():
        owner = hooks.lock_owner(payment_id)
        payment = lock_payment(payment_id)
        refund = lock_refund(refund_id)
        stripe_status = (stripe_refund or {}).get("status")
        gone = stripe_refund is None or stripe_status in ("failed", "canceled")
        if refund.status == RefundStatus.FAILED or (refund.status == RefundStatus.SUCCEEDED and not gone):
            return refund
        mismatch = _refund_disagrees(refund, stripe_refund)
        if mismatch:
            payment_flag(payment=payment, reason=mismatch)
            return refund
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
        # Refused, failed or canceled (before or after it succeeded): give back what was reserved and reversed.
        was_succeeded = refund.status == RefundStatus.SUCCEEDED
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
                memo=f"refund {refund.pk} {'failed after succeeding' if was_succeeded else 'refused by Stripe'}:"
                " reversal undone",
                legs=[Leg(leg.account_id, -leg.amount) for leg in legs],
            )
            if was_succeeded:
                refunds.settled(owner, payment)
        return refund


def _refund_disagrees(refund: Refund, stripe_refund: Any) -> str:
    if not stripe_refund:
        return ""
    amount, currency = stripe_refund.get("amount"), stripe_refund.get("currency")
    if amount is not None and int(amount) != refund.amount:
        return f"refund {refund.pk} amount: ours {refund.amount}, Stripe's {amount}"
    if currency and str(currency).lower() != refund.currency:
        return f"refund {refund.pk} currency: ours {refund.currency}, Stripe's {currency}"
    return ""


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


def _refund_of_ours(stripe_refund: Mapping[str, Any]) -> Refund | None:
    found = Refund.objects.filter(stripe_refund_id=stripe_refund.get("id")).first()
    if found is None:
        refund_id = (stripe_refund.get("metadata") or {}).get("refund_id")
        found = Refund.objects.filter(pk=refund_id).first() if refund_id else None
    return found


def stripe_refunds_apply(*, payment_id: str) -> list[Refund]:
    """Applies every refund Stripe lists for a payment's intent; call outside a transaction.

    Ours (by id or metadata) are finished with ``refund_finish`` (which also
    reverses one that failed after succeeding); a succeeded one we never made
    (Stripe's dashboard) is recorded with ``refund_record_external``.
    """
    payment = Payment.objects.get(pk=payment_id)
    if not payment.stripe_payment_intent_id:
        return []
    listed: Any = gateway.raw_call(stripe.Refund.list, payment_intent=payment.stripe_payment_intent_id, limit=100)
    applied: list[Refund] = []
    for candidate in listed.data:
        stripe_refund = as_mapping(candidate)
        ours = _refund_of_ours(stripe_refund)
        if ours is not None:
            applied.append(refund_finish(refund_id=ours.pk, stripe_refund=stripe_refund))
        elif stripe_refund.get("status") == "succeeded":
            recorded = refund_record_external(payment_id=payment.pk, stripe_refund=stripe_refund)
            if recorded is not None:
                applied.append(recorded)
    return applied


EXTERNAL_REFUND_REASON = "refunded outside the platform (Stripe)"


def refund_record_external(*, payment_id: str, stripe_refund: Mapping[str, Any]) -> Refund | None:
    """Records a succeeded refund made outside the platform, through the same reversal as ours; idempotent.

    The refund (``external``) reverses the merchant's net and the fee as ours do
    (the owner's hooks), posts the ledger entry and tells the owner (its status,
    goods revoked when the refund makes it full). One that does not fit (more
    than is left, another currency, a payment that is never refunded, a merchant
    who cannot give the net back) flags the payment for staff instead; None then.
    Locks: Order → Payment → wallet accounts.
    """
    try:
        return _refund_record_external(payment_id=payment_id, stripe_refund=stripe_refund)
    except (PaymentHooksMissing, InsufficientFunds) as exc:
        payment = Payment.objects.get(pk=payment_id)
        payment_flag(payment=payment, reason=f"external refund {stripe_refund.get('id')} not recorded: {exc}")
        return None


@retry_on_contention()
def _refund_record_external(*, payment_id: str, stripe_refund: Mapping[str, Any]) -> Refund | None:
    stripe_id = str(stripe_refund.get("id") or "")
    kind = Payment.objects.values_list("kind", flat=True).get(pk=payment_id)
    hooks = hooks_for(kind)
    refunds = refund_hooks_for(kind)
    with transaction.atomic():
        owner = hooks.lock_owner(payment_id)
        payment = lock_payment(payment_id)
        existing = Refund.objects.filter(stripe_refund_id=stripe_id).first()
        if existing is not None:
            return existing
        amount = int(stripe_refund.get("amount") or 0)
        currency = str(stripe_refund.get("currency") or payment.currency).lower()
        left = payment.amount - payment.amount_refunded
        if owner is None or amount <= 0 or amount > left or currency != payment.currency:
            payment_flag(payment=payment, reason=f"external refund {stripe_id} of {amount} {currency} does not fit")
            return None
        fee_part, net_part = refunds.parts(owner, payment, amount)
        now = timezone.now()
        refund = Refund(
            payment=payment,
            amount=amount,
            currency=currency,
            status=RefundStatus.SUCCEEDED,
            reason=EXTERNAL_REFUND_REASON,
            stripe_refund_id=stripe_id,
            external=True,
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
        ledger_post(
            kind=EntryKind.REFUND,
            currency=currency,
            reference=refund.pk,
            idempotency_key=refund_key(refund.pk),
            memo=f"external refund {stripe_id}",
            legs=refunds.legs(owner, payment, amount, fee_part, net_part),
        )
        audit_record(
            actor=None,
            action="refund.external",
            object_type="refund",
            object_id=refund.pk,
            data={"payment": payment.pk, "stripe_refund": stripe_id, "amount": amount, "currency": currency},
        )
        refunds.settled(owner, payment)
    return refund
