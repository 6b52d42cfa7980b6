"""Reads of the catalog: what the public and what a merchant may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from catalog.errors import ProductNotFound
from catalog.models import Product, ProductCode, ProductFile
from catalog.rendering import public_product, public_rows, to_json


def products_public() -> QuerySet[Product]:
    """Products anyone may see and buy: active and not deleted."""
    return Product.objects.filter(is_active=True, deleted_at__isnull=True)


def product_public_get(product_id: str) -> Product:
    try:
        return products_public().get(pk=product_id)
    except Product.DoesNotExist as exc:
        raise ProductNotFound(param="id") from exc


def product_public_data(product_id: str) -> dict[str, Any]:
    """What anyone sees of one public product (one query, no model instance)."""
    row = public_rows(products_public().filter(pk=product_id)).first()
    if row is None:
        raise ProductNotFound(param="id")
    return public_product(row)


def product_public_body(product_id: str) -> bytes | None:
    """The public JSON body of one product; None when it is not public (the caller answers 404)."""
    try:
        return to_json(product_public_data(product_id))
    except ProductNotFound:
        return None


def products_of_merchant(merchant: User) -> QuerySet[Product]:
    """A merchant's own products, deleted ones included."""
    return Product.objects.filter(merchant=merchant)


def product_of_merchant_get(merchant: User, product_id: str) -> Product:
    try:
        return products_of_merchant(merchant).get(pk=product_id)
    except Product.DoesNotExist as exc:
        raise ProductNotFound(param="id") from exc


def products_of_merchant_newest_first(merchant: User) -> QuerySet[Product]:
    """A merchant's own products for a paged list, deleted ones included, newest first."""
    return products_of_merchant(merchant).order_by("-id")


def products_live_count_of_merchant(merchant: User) -> int:
    """How many of the merchant's products are not deleted (active or not)."""
    return products_of_merchant(merchant).filter(deleted_at__isnull=True).count()


def codes_of_product(*, merchant: User, product_id: str) -> QuerySet[ProductCode]:
    """The codes of the merchant's own product, oldest first, with each one's status and holding order.

    Raises ProductNotFound (404) for another merchant's product.
    """
    product_of_merchant_get(merchant, product_id)
    return ProductCode.objects.filter(product_id=product_id).order_by("id")


def product_file_of(product_id: str) -> ProductFile | None:
    return ProductFile.objects.filter(product_id=product_id).first()
