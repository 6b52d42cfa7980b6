"""Reads behind the merchant's reports: filtered sales, period totals, the 30-day revenue series, CSV rows.

One definition of every figure: the overview's totals are sums of the CSV's columns over the same sales.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import User
from orders.models import PAID_STATUSES, Order
from orders.selectors import sales_of_merchant

CSV_HEADER = (
    "order",
    "created_at",
    "product",
    "quantity",
    "amount",
    "fee",
    "net",
    "currency",
    "status",
    "amount_refunded",
)
CHART_DAYS = 30


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def sales_filtered(
    *,
    merchant: User,
    status: str | None = None,
    since: date | None = None,
    until: date | None = None,
    search: str = "",
) -> QuerySet[Order]:
    """The merchant's orders, newest first; ``since``/``until``: inclusive days; ``search``: an order id."""
    sales = sales_of_merchant(merchant=merchant, status=status, since=day_start(since) if since else None)
    if until is not None:
        sales = sales.filter(created_at__lt=day_start(until + timedelta(days=1)))
    search = search.strip()
    if search:
        sales = sales.filter(pk__istartswith=search) if search.startswith("ord_") else sales.filter(pk=search)
    return sales.select_related("product", "payment").order_by("-id")


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    label: str
    sales: int  # paid orders (partly or fully refunded ones included)
    gross: int
    fees: int
    refunds: int
    net: int  # the merchant's part of gross, after the platform's fee (refunds shown apart)


def _totals(orders: QuerySet[Order], label: str) -> PeriodTotals:
    sums = orders.filter(status__in=PAID_STATUSES).aggregate(
        sales=Count("id"),
        gross=Coalesce(Sum("amount"), 0),
        fees=Coalesce(Sum("fee"), 0),
        refunds=Coalesce(Sum("payment__amount_refunded"), 0),
        net=Coalesce(Sum("merchant_net"), 0),
    )
    return PeriodTotals(label=label, **sums)


def sales_period_totals(*, merchant: User, today: date | None = None) -> list[PeriodTotals]:
    """Totals of paid sales created today, in the last 7 and in the last 30 days (today included)."""
    today = today or timezone.localdate()
    periods = (("Today", 1), ("7 days", 7), ("30 days", CHART_DAYS))
    return [
        _totals(sales_filtered(merchant=merchant, since=today - timedelta(days=days - 1)), label)
        for label, days in periods
    ]


@dataclass(frozen=True, slots=True)
class DayRevenue:
    day: date
    gross: int
    sales: int


def revenue_by_day(*, merchant: User, today: date | None = None, days: int = CHART_DAYS) -> list[DayRevenue]:
    """Gross of paid sales per day for the last ``days`` days, oldest first, zero days included."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = (
        sales_filtered(merchant=merchant, since=first)
        .filter(status__in=PAID_STATUSES)
        .annotate(day=TruncDate("created_at"))
        .order_by()
        .values("day")
        .annotate(gross=Sum("amount"), sales=Count("id"))
    )
    found = {row["day"]: (row["gross"], row["sales"]) for row in rows}
    return [
        DayRevenue(day=d, gross=found.get(d, (0, 0))[0], sales=found.get(d, (0, 0))[1])
        for d in (first + timedelta(days=n) for n in range(days))
    ]


def sales_csv_rows(orders: QuerySet[Order]) -> Iterator[tuple[str | int, ...]]:
    """One row per order in CSV_HEADER's order, read in chunks (the export is streamed)."""
    for order in orders.iterator(chunk_size=500):
        refunded = order.payment.amount_refunded if order.payment is not None else 0
        yield (
            order.pk,
            order.created_at.isoformat().replace("+00:00", "Z"),
            order.product_id,
            order.quantity,
            order.amount,
            order.fee,
            order.merchant_net,
            order.currency,
            order.status,
            refunded,
        )


def units_sold_by_product(*, merchant: User, product_ids: list[str]) -> dict[str, int]:
    """Units of each product in the merchant's paid orders (refunded ones included): the products page's "sold"."""
    rows = (
        Order.objects.filter(merchant=merchant, product_id__in=product_ids, status__in=PAID_STATUSES)
        .order_by()
        .values("product_id")
        .annotate(units=Sum("quantity"))
    )
    return {row["product_id"]: row["units"] for row in rows}
