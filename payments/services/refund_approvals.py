"""Four eyes on staff refunds: a refund at or above ``FOUR_EYES_THRESHOLD`` waits in ``pending_approval``
until a second, different Finance user approves it (then it runs as any refund) or rejects it (``canceled``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.roles import Perm, staff_require
from accounts.services import audit_record
from config.db import retry_on_contention
from config.errors import FourEyesRequired, InvalidStatus, NotFound, ValidationFailed
from payments.hooks import hooks_for
from payments.locks import lock_payment, lock_refund
from payments.models import Refund, RefundStatus
from payments.services.refunds import refund_amount_check, refund_apply, refund_at_stripe


def _reason_required(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A money decision needs a reason.", param="reason")
    return reason[:255]


def _payment_of(refund_id: str) -> tuple[str, str]:
    row = Refund.objects.filter(pk=refund_id).values_list("payment_id", "payment__kind").first()
    if row is None:
        raise NotFound(f"No refund {refund_id}.", param="refund")
    return row


def _awaiting(refund: Refund) -> None:
    if refund.status != RefundStatus.PENDING_APPROVAL:
        raise InvalidStatus(f"Refund {refund.pk} is {refund.status}; only a refund pending approval can be decided.")


def refund_approve(*, refund_id: str, actor: User | None, reason: str) -> Refund:
    """The second pair of eyes: a Finance user other than the requester lets a ``pending_approval`` refund run.

    It is then reserved and reversed as ``refund_create`` does (a card refund then goes to Stripe, no lock
    held). Call outside a transaction. Locks: Order → Payment → Refund → wallet accounts. Audited. Raises
    PermissionDeniedError, FourEyesRequired (the requester), ValidationFailed (no reason), NotFound,
    InvalidStatus, AlreadyRefunded/RefundExceedsPayment (refunded meanwhile), InsufficientFunds (merchant).
    """
    actor = staff_require(actor, Perm.DECIDE_STAFF_REFUNDS)
    reason = _reason_required(reason)
    refund = _refund_approve_reserve(refund_id=refund_id, actor=actor, reason=reason)
    if refund.status != RefundStatus.PENDING:
        return refund
    return refund_at_stripe(refund_id=refund.pk)


@retry_on_contention()
def _refund_approve_reserve(*, refund_id: str, actor: User, reason: str) -> Refund:
    payment_id, kind = _payment_of(refund_id)
    with transaction.atomic():
        owner = hooks_for(kind).lock_owner(payment_id)
        payment = lock_payment(payment_id)
        refund = lock_refund(refund_id)
        _awaiting(refund)
        if refund.requested_by_id == actor.pk:
            raise FourEyesRequired(
                f"Refund {refund.pk} of {refund.amount} needs the approval of a Finance user other than you, "
                "who asked for it."
            )
        if owner is None:
            raise InvalidStatus(f"Refund {refund.pk} has no order to refund.")
        refund_amount_check(payment, refund.amount)
        refund.approved_by = actor
        refund.decided_at = timezone.now()
        refund.decision_reason = reason
        refund_apply(order=owner, payment=payment, refund=refund)
        audit_record(
            actor=actor,
            action="refund.approve",
            object_type="refund",
            object_id=refund.pk,
            data={
                "amount": refund.amount,
                "currency": refund.currency,
                "reason": reason,
                "requested_by": refund.requested_by_id,
            },
        )
    return refund


@retry_on_contention()
def refund_reject(*, refund_id: str, actor: User | None, reason: str) -> Refund:
    """A Finance user turns down a ``pending_approval`` refund: it ends ``canceled``; nothing had moved.

    Locks: the refund. Audited. Raises PermissionDeniedError, ValidationFailed (no reason), NotFound,
    InvalidStatus.
    """
    actor = staff_require(actor, Perm.DECIDE_STAFF_REFUNDS)
    reason = _reason_required(reason)
    _payment_of(refund_id)
    with transaction.atomic():
        refund = lock_refund(refund_id)
        _awaiting(refund)
        now = timezone.now()
        refund.status = RefundStatus.CANCELED
        refund.decided_at = now
        refund.decision_reason = reason
        refund.updated_at = now
        refund.save(update_fields=["status", "decided_at", "decision_reason", "updated_at"])
        audit_record(
            actor=actor,
            action="refund.reject",
            object_type="refund",
            object_id=refund.pk,
            data={"amount": refund.amount, "currency": refund.currency, "reason": reason},
        )
    return refund
