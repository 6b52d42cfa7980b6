"""Every read of payments, refunds and saved cards that is more than a get by pk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from config.errors import NotFound
from payments.models import Payment, Refund, SavedCard

if TYPE_CHECKING:
    from accounts.models import User


def payments_of(user: User) -> QuerySet[Payment]:
    """The user's own payments (orders and deposits), newest first."""
    return Payment.objects.filter(user_id=user.pk).order_by("-id")


def payment_get(*, user: User, payment_id: str) -> Payment:
    payment = Payment.objects.filter(pk=payment_id, user_id=user.pk).first()
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def saved_cards_of(user: User) -> QuerySet[SavedCard]:
    return SavedCard.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def refund_get(*, user: User, refund_id: str) -> Refund:
    """A refund its buyer, the selling merchant or staff may see; anyone else gets 404."""
    refund = Refund.objects.select_related("payment", "payment__order").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound("No such refund.")
    if user.is_staff:
        return refund
    order = getattr(refund.payment, "order", None)
    if refund.payment.user_id == user.pk or (order is not None and order.merchant_id == user.pk):
        return refund
    raise NotFound("No such refund.")
