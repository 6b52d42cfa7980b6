"""Canceling: the buyer's cancel of a pending order, and the expiry of reservations that ran out.

The card's PaymentIntent is canceled first with no lock held; then Order → Payment are locked and re-read.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.db import retry_on_contention
from config.errors import DomainError, StripeUnavailable
from orders.errors import OrderNotFound, OrderNotPending
from orders.locks import lock_order
from orders.models import Order, OrderStatus
from orders.services.outcomes import order_close, order_on_payment_changed
from payments.locks import lock_payment
from payments.models import PaymentMethodType, PaymentStatus
from payments.services.charges import card_payment_cancel

logger = logging.getLogger(__name__)


def order_cancel(*, buyer: User, order_id: str) -> Order:
    """The buyer cancels a pending order: the card's PaymentIntent is canceled
    first (no lock held), then the order, and its stock comes back. Raises
    OrderNotFound, OrderNotPending (also when the card succeeded meanwhile)."""
    order = Order.objects.filter(pk=order_id, buyer=buyer).first()
    if order is None:
        raise OrderNotFound(param="id")
    if order.status != OrderStatus.PENDING:
        raise OrderNotPending(f"Order {order.pk} is {order.status}; only a pending order can be canceled.")
    _order_cancel_pending(order)
    order = Order.objects.select_related("payment").get(pk=order.pk)
    if order.status != OrderStatus.CANCELED:
        raise OrderNotPending(f"Order {order.pk} became {order.status} before it could be canceled.")
    return order


def _order_cancel_pending(order: Order) -> None:
    payment_intent_cancel(order)
    order_close_pending(order_id=order.pk, to=OrderStatus.CANCELED)


def payment_intent_cancel(order: Order) -> None:
    """Stops a card payment from succeeding later, through payments (it may call Stripe: no lock held).

    Raises StripeUnavailable. Any other refusal (the intent already succeeded or
    failed) is left to the lock-and-re-read step that follows.
    """
    if order.payment_method != PaymentMethodType.CARD or order.payment_id is None:
        return
    try:
        card_payment_cancel(payment_id=order.payment_id)
    except StripeUnavailable:
        raise
    except DomainError as exc:
        logger.info("payment intent not canceled", extra={"order": order.pk, "reason": exc.message})


@retry_on_contention()
def order_close_pending(*, order_id: str, to: OrderStatus) -> Order:
    """Locks the order and its payment; a still-pending order is closed (stock back),
    unless its payment succeeded meanwhile, which pays it instead."""
    with transaction.atomic():
        order = lock_order(order_id)
        if order.status != OrderStatus.PENDING:
            return order
        payment = lock_payment(order.payment_id) if order.payment_id else None
        if payment is not None and payment.status == PaymentStatus.SUCCEEDED:
            order_on_payment_changed(order=order, payment=payment)
        else:
            order_close(order, to=to)
    return order


def orders_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """Cancels pending orders whose reservation ran out; their stock comes back.

    Each order: its PaymentIntent is canceled through payments first (no lock),
    then the order is locked and re-read; one whose card succeeded meanwhile is
    paid instead. Returns how many were canceled.
    """
    now = now or timezone.now()
    expired = list(
        Order.objects.filter(status=OrderStatus.PENDING, reserved_until__lt=now).order_by("reserved_until")[:limit]
    )
    canceled = 0
    for order in expired:
        try:
            _order_cancel_pending(order)
        except StripeUnavailable:
            logger.warning("Stripe unavailable; order expiry retried next run", extra={"order": order.pk})
            continue
        except Exception:
            logger.exception("order expiry failed", extra={"order": order.pk})
            continue
        if Order.objects.filter(pk=order.pk, status=OrderStatus.CANCELED).exists():
            canceled += 1
    return canceled
