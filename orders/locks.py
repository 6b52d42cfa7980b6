"""Row locks of the orders app (global lock order: see ``wallets.locks``)."""

from __future__ import annotations

from orders.models import Order


def lock_order(order_id: str) -> Order:
    """Locks one order; raises Order.DoesNotExist."""
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)
