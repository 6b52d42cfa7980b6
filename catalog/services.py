"""Every write to products. Each one drops the public catalog cache once it commits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from catalog.cache import catalog_cache_bump_on_commit
from catalog.errors import NotAMerchant, ProductNotFound
from catalog.locks import lock_product
from catalog.models import Product
from config.db import retry_on_contention
from config.errors import ValidationFailed

# What a merchant may change on a product (``currency`` follows the platform).
EDITABLE_FIELDS = frozenset({"name", "description", "price", "stock", "fulfillment", "is_active"})


def _check_merchant(user: User) -> None:
    if not user.is_merchant:
        raise NotAMerchant()


def _check_values(values: dict[str, Any]) -> None:
    """Service-level guard for callers other than the API serializers (dashboard, scripts)."""
    price = values.get("price")
    if price is not None and not (0 < price <= settings.MAXIMUM_PRODUCT_PRICE):
        raise ValidationFailed(f"Price must be between 1 and {settings.MAXIMUM_PRODUCT_PRICE}.", param="price")
    stock = values.get("stock")
    if stock is not None and stock < 0:
        raise ValidationFailed("Stock cannot be negative.", param="stock")
    if "name" in values and not (1 <= len(values["name"]) <= 200):
        raise ValidationFailed("Name must be 1 to 200 characters.", param="name")
    if "fulfillment" in values and not (1 <= len(values["fulfillment"]) <= 5000):
        raise ValidationFailed("Fulfillment must be 1 to 5000 characters.", param="fulfillment")
    if len(values.get("description") or "") > 5000:
        raise ValidationFailed("Description must be at most 5000 characters.", param="description")


def product_create(
    *,
    merchant: User,
    name: str,
    price: int,
    fulfillment: str,
    description: str = "",
    stock: int | None = None,
    is_active: bool = True,
) -> Product:
    """Creates a product in the platform currency. Side effect: drops the public cache on commit."""
    _check_merchant(merchant)
    values = {"name": name, "description": description, "price": price, "stock": stock, "fulfillment": fulfillment}
    _check_values(values)
    now = timezone.now()
    with transaction.atomic():
        product = Product(
            merchant=merchant,
            currency=settings.PLATFORM_CURRENCY,
            is_active=is_active,
            created_at=now,
            updated_at=now,
            **values,
        )
        product.save(force_insert=True)
        catalog_cache_bump_on_commit()
    return product


@retry_on_contention()
def product_update(*, merchant: User, product_id: str, **changes: Any) -> Product:
    """Changes a merchant's own live product (any of ``EDITABLE_FIELDS``; ``stock=None`` = unlimited).

    Locks: the product row. Raises ProductNotFound for another merchant's or a
    deleted product. Side effect: drops the public cache on commit.
    """
    _check_merchant(merchant)
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown field {sorted(unknown)[0]}.", param=sorted(unknown)[0])
    _check_values(changes)
    with transaction.atomic():
        product = _lock_own(product_id, merchant)
        changed = [field for field, value in changes.items() if getattr(product, field) != value]
        if changed:
            for field in changed:
                setattr(product, field, changes[field])
            product.updated_at = timezone.now()
            product.save(update_fields=[*changed, "updated_at"])
            catalog_cache_bump_on_commit()
    return product


def _lock_own(product_id: str, merchant: User) -> Product:
    """Locks the merchant's own live product; ProductNotFound for anyone else's or a deleted one."""
    try:
        return lock_product(product_id, merchant_id=merchant.pk)
    except Product.DoesNotExist as exc:
        raise ProductNotFound(param="id") from exc


@retry_on_contention()
def product_delete(*, merchant: User, product_id: str) -> Product:
    """Soft-deletes a merchant's own product: hidden from the public, kept for orders.

    Locks: the product row. Raises ProductNotFound when it is not the
    merchant's or already deleted. Side effect: drops the public cache on commit.
    """
    _check_merchant(merchant)
    with transaction.atomic():
        product = _lock_own(product_id, merchant)
        product.deleted_at = product.updated_at = timezone.now()
        product.save(update_fields=["deleted_at", "updated_at"])
        catalog_cache_bump_on_commit()
    return product
