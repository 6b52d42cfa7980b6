"""Row locks of the catalog app (global lock order: see ``wallets.locks``).

Stock moves with one conditional ``UPDATE … RETURNING``: the row lock is
taken, the product checked (public, enough stock) and what the order needs
read back in a single round trip. The lock is held until the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone

from catalog.cache import catalog_cache_bump_on_commit
from catalog.models import Product

_TABLE = Product._meta.db_table


@dataclass(frozen=True, slots=True)
class TakenStock:
    product_id: str
    merchant_id: str
    price: int
    currency: str
    fulfillment: str
    stock_left: int | None  # None: unlimited


def stock_take_sql(product_id: str, quantity: int) -> tuple[str, list[Any]]:
    """The conditional ``UPDATE … RETURNING merchant_id, price, currency,
    fulfillment, stock`` of ``stock_take``, for callers that embed it in a
    larger statement (a CTE): no row when the product is not public or short."""
    sql = f"""
        UPDATE {_TABLE}
           SET stock = CASE WHEN stock IS NULL THEN NULL ELSE stock - %s END,
               updated_at = %s
         WHERE id = %s AND is_active AND deleted_at IS NULL
           AND (stock IS NULL OR stock >= %s)
     RETURNING merchant_id, price, currency, fulfillment, stock
    """  # noqa: S608 - the table name is ours, every value is a parameter
    return sql, [quantity, timezone.now(), product_id, quantity]


def stock_take(product_id: str, quantity: int) -> TakenStock | None:
    """Takes ``quantity`` from a public product's stock and locks its row.

    Returns None, taking nothing, when the product is not public or has too
    little stock left (the caller tells which apart with an unlocked read).
    """
    sql, params = stock_take_sql(product_id, quantity)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    merchant_id, price, currency, fulfillment, stock_left = row
    if stock_left is not None:
        # The public catalog shows the stock: drop its cached bodies once this commits.
        catalog_cache_bump_on_commit()
    return TakenStock(product_id, merchant_id, price, currency, fulfillment, stock_left)


def stock_return(product_id: str, quantity: int) -> None:
    """Gives taken stock back (unlimited stock stays unlimited); locks the product row."""
    changed = Product.objects.filter(pk=product_id, stock__isnull=False).update(
        stock=F("stock") + quantity, updated_at=timezone.now()
    )
    if changed:
        catalog_cache_bump_on_commit()


def lock_product(product_id: str, *, merchant_id: str) -> Product:
    """Locks one live (not deleted) product of ``merchant_id``; raises Product.DoesNotExist."""
    return Product.objects.select_for_update(of=("self",)).get(
        pk=product_id, merchant_id=merchant_id, deleted_at__isnull=True
    )
