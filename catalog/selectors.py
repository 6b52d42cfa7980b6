"""Reads of the catalog: what the public and what a merchant may see."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from catalog.errors import ProductNotFound
from catalog.models import Product


def products_public() -> QuerySet[Product]:
    """Products anyone may see and buy: active and not deleted."""
    return Product.objects.filter(is_active=True, deleted_at__isnull=True)


def product_public_get(product_id: str) -> Product:
    try:
        return products_public().get(pk=product_id)
    except Product.DoesNotExist as exc:
        raise ProductNotFound(param="id") from exc


def products_of_merchant(merchant: User) -> QuerySet[Product]:
    """A merchant's own products, deleted ones included."""
    return Product.objects.filter(merchant=merchant)


def product_of_merchant_get(merchant: User, product_id: str) -> Product:
    try:
        return products_of_merchant(merchant).get(pk=product_id)
    except Product.DoesNotExist as exc:
        raise ProductNotFound(param="id") from exc
