"""Every read of orders that is more than a get by pk: who may see what."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from accounts.models import User
from config.ids import id_at
from orders.errors import OrderNotFound
from orders.models import Order, WebhookEndpoint


def orders_of_buyer(*, buyer: User) -> QuerySet[Order]:
    """The buyer's orders, newest first (the payment joined for its client_secret)."""
    return Order.objects.filter(buyer=buyer).select_related("payment")


def order_of_buyer(*, buyer: User, order_id: str) -> Order:
    """One of the buyer's orders; another user's order is not found."""
    order = orders_of_buyer(buyer=buyer).filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound(param="id")
    return order


def sales_of_merchant(*, merchant: User, status: str | None = None, since: datetime | None = None) -> QuerySet[Order]:
    """Orders of the merchant's products, newest first; ``since``: created at or after."""
    sales = Order.objects.filter(merchant=merchant)
    if status:
        sales = sales.filter(status=status)
    if since is not None:
        # Ids start with their creation time, so a range on the (merchant, -id)
        # index (with a second of slack for clock steps) bounds the scan.
        lower = id_at("ord", int(since.timestamp() * 1000) - 1000)
        sales = sales.filter(pk__gte=lower, created_at__gte=since)
    return sales


def webhook_endpoints_of(*, merchant: User) -> QuerySet[WebhookEndpoint]:
    """The merchant's live webhook endpoints, newest first."""
    return WebhookEndpoint.objects.filter(merchant=merchant, deleted_at__isnull=True)
