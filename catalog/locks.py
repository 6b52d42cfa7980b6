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
from catalog.models import CodeStatus, Product, ProductCode

_TABLE = Product._meta.db_table
_CODES = ProductCode._meta.db_table


@dataclass(frozen=True, slots=True)
class TakenStock:
    product_id: str
    merchant_id: str
    price: int
    currency: str
    fulfillment: str
    delivery: str
    download_limit: int
    download_ttl_hours: int
    stock_left: int | None  # None: unlimited


def stock_take_sql(product_id: str, quantity: int) -> tuple[str, list[Any]]:
    """The conditional ``UPDATE … RETURNING merchant_id, price, currency,
    fulfillment, delivery, download_limit, download_ttl_hours, stock`` of ``stock_take``, for callers that embed it in a
    larger statement (a CTE): no row when the product is not public or short."""
    sql = f"""
        UPDATE {_TABLE}
           SET stock = CASE WHEN stock IS NULL THEN NULL ELSE stock - %s END,
               updated_at = %s
         WHERE id = %s AND is_active AND deleted_at IS NULL
           AND (stock IS NULL OR stock >= %s)
     RETURNING merchant_id, price, currency, fulfillment, delivery, download_limit, download_ttl_hours, stock
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
    merchant_id, price, currency, fulfillment, delivery, download_limit, download_ttl_hours, stock_left = row
    if stock_left is not None:
        # The public catalog shows the stock: drop its cached bodies once this commits.
        catalog_cache_bump_on_commit()
    return TakenStock(
        product_id, merchant_id, price, currency, fulfillment, delivery, download_limit, download_ttl_hours, stock_left
    )


def codes_take_sql(*, product_id: str, quantity: int, order_id: str, gate: str) -> tuple[str, list[Any]]:
    """``UPDATE … RETURNING id, code`` marking the ``quantity`` lowest-numbered available codes sold to ``order_id``.

    For a statement that took the product's stock first (``gate``: a CTE that has a row only then), so the
    product row lock orders every taker. ``FOR UPDATE`` under the ``LIMIT`` re-reads a code another taker
    sold meanwhile and passes over it; codes added after the statement's snapshot are not seen (the caller
    compares the count and redoes the statement).
    """
    sql = f"""
        UPDATE {_CODES} AS c
           SET status = '{CodeStatus.SOLD}', order_id = %s, sold_at = %s
          FROM (SELECT id FROM {_CODES}
                 WHERE product_id = %s AND status = '{CodeStatus.AVAILABLE}' AND EXISTS (SELECT 1 FROM {gate})
                 ORDER BY id LIMIT %s FOR UPDATE) AS pick
         WHERE c.id = pick.id
     RETURNING c.id, c.code
    """  # noqa: S608 - the names are ours, every value is a parameter
    return sql, [order_id, timezone.now(), product_id, quantity]


def codes_take(*, product_id: str, quantity: int, order_id: str) -> list[tuple[int, str]]:
    """Marks ``quantity`` available codes sold to ``order_id`` (lowest ids first); the caller took the stock
    (and so holds the product row) in this transaction. Returns the (id, code) pairs, fewer when short."""
    sql = f"""
        UPDATE {_CODES} SET status = '{CodeStatus.SOLD}', order_id = %s, sold_at = %s
         WHERE id IN (SELECT id FROM {_CODES} WHERE product_id = %s AND status = '{CodeStatus.AVAILABLE}'
                       ORDER BY id LIMIT %s FOR UPDATE)
     RETURNING id, code
    """  # noqa: S608 - the names are ours, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [order_id, timezone.now(), product_id, quantity])
        return sorted(cursor.fetchall())


def codes_release(*, order_id: str) -> int:
    """An order that was never paid gives its codes back to the pool (the caller returns the stock)."""
    return ProductCode.objects.filter(order_id=order_id, status=CodeStatus.SOLD).update(
        status=CodeStatus.AVAILABLE, order_id="", sold_at=None
    )


def codes_revoke(*, order_id: str) -> int:
    """A refunded or lost order's codes are revoked: they stay out of the pool for good."""
    return ProductCode.objects.filter(order_id=order_id, status=CodeStatus.SOLD).update(status=CodeStatus.REVOKED)


def stock_return(product_id: str, quantity: int, *, order_id: str | None = None) -> None:
    """Gives taken stock back (unlimited stock stays unlimited); locks the product row.

    With ``order_id``, that order's codes go back to the pool too (after the product row: the lock order).
    """
    changed = Product.objects.filter(pk=product_id, stock__isnull=False).update(
        stock=F("stock") + quantity, updated_at=timezone.now()
    )
    if changed:
        catalog_cache_bump_on_commit()
    if order_id is not None:
        codes_release(order_id=order_id)


def lock_product(product_id: str, *, merchant_id: str) -> Product:
    """Locks one live (not deleted) product of ``merchant_id``; raises Product.DoesNotExist."""
    return Product.objects.select_for_update(of=("self",)).get(
        pk=product_id, merchant_id=merchant_id, deleted_at__isnull=True
    )
