"""How an order is rendered as JSON data: the merchant's sale view (API and order events) and timestamps.

Plain functions, no database access: the serializers and the order events both render through them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orders.models import Order


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def sale_object(order: Order) -> dict[str, Any]:
    """An order of one of the merchant's products, with the platform fee and what the merchant nets."""
    return {
        "id": order.pk,
        "status": order.status,
        "product": order.product_id,
        "buyer": order.buyer_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "amount": order.amount,
        "fee": order.fee,
        "merchant_net": order.merchant_net,
        "currency": order.currency,
        "payment_method": order.payment_method,
        "payment": order.payment_id,
        "created_at": iso(order.created_at),
        "paid_at": iso(order.paid_at),
    }
