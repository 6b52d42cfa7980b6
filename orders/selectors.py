"""Every read of orders that is more than a get by pk: who may see what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, QuerySet, Sum

from accounts.models import User
from config.ids import id_at
from orders.errors import OrderNotFound
from orders.models import PAID_STATUSES, EventDelivery, Goods, Order, OrderEvent, WebhookEndpoint
from payments.models import Refund


def orders_of_buyer(*, buyer: User) -> QuerySet[Order]:
    """The buyer's orders, newest first (the payment joined for its client_secret, the goods fetched at once)."""
    return Order.objects.filter(buyer=buyer).select_related("payment").prefetch_related("goods")


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


@dataclass(frozen=True, slots=True)
class SalesTotals:
    sales: int  # paid orders, partly or fully refunded ones included
    gross: int
    net: int  # after platform fees
    refunded: int


def sales_totals_of_merchant(*, merchant: User) -> SalesTotals:
    """Count and sums of the merchant's paid orders, in one aggregate; zeros when there are none."""
    totals = Order.objects.filter(merchant=merchant, status__in=PAID_STATUSES).aggregate(
        sales=Count("id"), gross=Sum("amount"), net=Sum("merchant_net"), refunded=Sum("payment__amount_refunded")
    )
    return SalesTotals(**{key: value or 0 for key, value in totals.items()})


def sales_recent_of_merchant(*, merchant: User, limit: int = 10) -> list[Order]:
    """The merchant's ``limit`` newest orders, their product joined."""
    return list(sales_of_merchant(merchant=merchant).select_related("product").order_by("-id")[:limit])


def sales_listed_of_merchant(*, merchant: User, status: str | None = None) -> QuerySet[Order]:
    """The merchant's orders for a paged list, newest first, product and payment joined."""
    return sales_of_merchant(merchant=merchant, status=status).select_related("product", "payment").order_by("-id")


def sale_of_merchant_get(*, merchant: User, order_id: str) -> Order:
    """One order of the merchant's products, with product, payment and buyer; anyone else's is not found."""
    order = (
        sales_of_merchant(merchant=merchant).select_related("product", "payment", "buyer").filter(pk=order_id).first()
    )
    if order is None:
        raise OrderNotFound(param="id")
    return order


def refunds_of_sale(*, order: Order) -> QuerySet[Refund]:
    """The refunds of the order's payment, newest first; none before it has a payment."""
    if order.payment_id is None:
        return Refund.objects.none()
    return Refund.objects.filter(payment_id=order.payment_id).order_by("-id")


def webhook_deliveries_of(*, merchant: User, limit: int = 25) -> list[EventDelivery]:
    """The ``limit`` newest deliveries to any of the merchant's endpoints, deleted ones included."""
    return list(
        EventDelivery.objects.filter(endpoint__merchant=merchant)
        .select_related("event", "endpoint")
        .order_by("-id")[:limit]
    )


def goods_of_sale(*, order: Order) -> QuerySet[Goods]:
    """What the order delivered, one item per unit, in the order it was made (the merchant sees codes and keys)."""
    return Goods.objects.filter(order_id=order.pk).order_by("id")


def events_of_sale(*, order: Order) -> QuerySet[OrderEvent]:
    """The order's events with their deliveries, oldest first."""
    return OrderEvent.objects.filter(order_id=order.pk).prefetch_related("deliveries").order_by("id")
