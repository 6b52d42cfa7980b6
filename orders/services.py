"""Every write to orders."""

from __future__ import annotations

from django.utils import timezone

from config.errors import InvalidStatus
from orders.models import ORDER_TRANSITIONS, Order


def order_transition(*, order: Order, to: str, fields: tuple[str, ...] = ()) -> None:
    """Moves a locked order to status ``to`` if the transition is allowed, and saves it.

    The caller holds the order's row lock. ``fields`` names other attributes the
    caller changed and wants saved in the same UPDATE.
    """
    if to not in ORDER_TRANSITIONS[order.status]:
        raise InvalidStatus(f"Order {order.id} is {order.status}; it cannot become {to}.")
    order.status = to
    order.updated_at = timezone.now()
    order.save(update_fields=["status", "updated_at", *fields])
