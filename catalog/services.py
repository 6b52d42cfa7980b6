"""Every write to products, their code pools and their files. Each one drops the public catalog cache once it
commits. A code pool's stock is recounted from its available codes under the product row lock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from catalog.cache import catalog_cache_bump_on_commit
from catalog.errors import NotAMerchant, ProductNotFound, StockChanged
from catalog.locks import lock_product
from catalog.models import CodeStatus, Delivery, Product, ProductCode, ProductFile
from config.db import retry_on_contention
from config.errors import ValidationFailed

# What a merchant may change on a product (``currency`` follows the platform).
# The delivery and a download's limits are set at creation (goods already sold were made with them).
EDITABLE_FIELDS = frozenset({"name", "description", "price", "stock", "fulfillment", "is_active"})
# ``expected_stock`` not given: a stock change is a plain set under the row lock.
UNGUARDED: Any = object()
MAX_CODES_PER_CALL = 1000
MAX_CODE_LENGTH = 200


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
    if len(values.get("fulfillment") or "") > 5000:
        raise ValidationFailed("Fulfillment must be at most 5000 characters.", param="fulfillment")
    if len(values.get("description") or "") > 5000:
        raise ValidationFailed("Description must be at most 5000 characters.", param="description")


def _check_delivery(delivery: str, *, stock: int | None, fulfillment: str, limit: int, ttl: int) -> None:
    if delivery not in Delivery.values:
        raise ValidationFailed(f"Delivery must be one of {', '.join(Delivery.values)}.", param="delivery")
    if delivery == Delivery.TEXT and not fulfillment.strip():
        raise ValidationFailed(
            "A text product needs its fulfillment (the content every buyer gets).", param="fulfillment"
        )
    if delivery == Delivery.CODES and stock is not None:
        raise ValidationFailed("A code pool's stock is the number of its unsold codes; upload codes.", param="stock")
    if not 1 <= limit <= 1000:
        raise ValidationFailed("download_limit must be between 1 and 1000.", param="download_limit")
    if not 1 <= ttl <= 24 * 365:
        raise ValidationFailed("download_ttl_hours must be between 1 and 8760.", param="download_ttl_hours")


def product_create(
    *,
    merchant: User,
    name: str,
    price: int,
    description: str = "",
    delivery: str = Delivery.TEXT,
    stock: int | None = None,
    fulfillment: str = "",
    download_limit: int = 5,
    download_ttl_hours: int = 72,
    is_active: bool = True,
) -> Product:
    """Creates a product in the platform currency (a code pool starts with stock 0: upload its codes).

    Side effect: drops the public cache on commit.
    """
    _check_merchant(merchant)
    values = {"name": name, "description": description, "price": price, "stock": stock, "fulfillment": fulfillment}
    _check_values(values)
    _check_delivery(delivery, stock=stock, fulfillment=fulfillment, limit=download_limit, ttl=download_ttl_hours)
    if delivery == Delivery.CODES:
        values["stock"] = 0
    now = timezone.now()
    with transaction.atomic():
        product = Product(
            merchant=merchant,
            currency=settings.PLATFORM_CURRENCY,
            is_active=is_active,
            delivery=delivery,
            download_limit=download_limit,
            download_ttl_hours=download_ttl_hours,
            created_at=now,
            updated_at=now,
            **values,
        )
        product.save(force_insert=True)
        catalog_cache_bump_on_commit()
    return product


@retry_on_contention()
def product_update(*, merchant: User, product_id: str, expected_stock: Any = UNGUARDED, **changes: Any) -> Product:
    """Changes a merchant's own live product (any of ``EDITABLE_FIELDS``; ``stock=None`` = unlimited).

    Only the fields given, and of them only those that differ, are written. A stock change with
    ``expected_stock`` (the stock the edit was based on, ``None`` = unlimited) is refused with StockChanged
    (409) when the locked row's stock is no longer that value, so a stale form never puts sold units back.
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
        if "stock" in changes and product.delivery == Delivery.CODES:
            raise ValidationFailed(
                "A code pool's stock is the number of its unsold codes; upload codes.", param="stock"
            )
        if "stock" in changes and expected_stock is not UNGUARDED and product.stock != expected_stock:
            now = "unlimited" if product.stock is None else product.stock
            raise StockChanged(
                f"The stock changed since this edit was based on it (it is now {now}): reload and retry.",
                param="stock",
            )
        if product.delivery == Delivery.TEXT and "fulfillment" in changes and not changes["fulfillment"].strip():
            raise ValidationFailed("A text product needs its fulfillment.", param="fulfillment")
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


def _check_codes(codes: list[str]) -> list[str]:
    if not isinstance(codes, list) or not 1 <= len(codes) <= MAX_CODES_PER_CALL:
        raise ValidationFailed(f"Send 1 to {MAX_CODES_PER_CALL} codes.", param="codes")
    for code in codes:
        if not isinstance(code, str) or not 1 <= len(code) <= MAX_CODE_LENGTH or not code.isprintable():
            raise ValidationFailed(f"Each code is 1 to {MAX_CODE_LENGTH} printable characters.", param="codes")
    if len(set(codes)) != len(codes):
        raise ValidationFailed("The codes sent repeat one another.", param="codes")
    return codes


def _codes_recount(product: Product) -> int:
    """Sets a locked code pool's stock to its count of available codes; returns it."""
    product.stock = ProductCode.objects.filter(product=product, status=CodeStatus.AVAILABLE).count()
    product.updated_at = timezone.now()
    product.save(update_fields=["stock", "updated_at"])
    catalog_cache_bump_on_commit()
    return product.stock


@retry_on_contention()
def product_codes_add(*, merchant: User, product_id: str, codes: list[str]) -> int:
    """Adds unique codes to the merchant's own code pool; returns the new stock (its available codes).

    Locks: the product row (as a purchase does, so stock and codes move together). A code the pool already
    has (sold and revoked ones included) refuses the whole call (400 ``codes``), adding nothing.
    """
    _check_merchant(merchant)
    _check_codes(codes)
    with transaction.atomic():
        product = _lock_own(product_id, merchant)
        if product.delivery != Delivery.CODES:
            raise ValidationFailed("Only a product delivered as codes has a code pool.", param="codes")
        now = timezone.now()
        table = ProductCode._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (product_id, code, status, order_id, created_at)"  # noqa: S608 - our table
                " SELECT %s, code, %s, '', %s FROM unnest(%s::text[]) AS code"
                " ON CONFLICT (product_id, code) DO NOTHING",
                [product.pk, CodeStatus.AVAILABLE, now, codes],
            )
            added = cursor.rowcount
        if added != len(codes):
            raise ValidationFailed(f"{len(codes) - added} of these codes are already in the pool.", param="codes")
        return _codes_recount(product)


@retry_on_contention()
def product_file_put(*, merchant: User, product_id: str, upload: UploadedFile) -> ProductFile:
    """Stores the one file of the merchant's own ``file`` product (Django's storage), replacing an earlier one.

    The sha256 is computed in chunks (never the whole file in memory). Locks: the product row. Side effect
    after commit: the replaced file is deleted from storage.
    """
    _check_merchant(merchant)
    if upload.size is None or upload.size > settings.MAX_UPLOAD_BYTES:
        raise ValidationFailed(f"A product file is at most {settings.MAX_UPLOAD_BYTES} bytes.", param="file")
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    name = Path(upload.name or "file").name[:200] or "file"
    with transaction.atomic():
        product = _lock_own(product_id, merchant)
        if product.delivery != Delivery.FILE:
            raise ValidationFailed("Only a product delivered as a file takes a file.", param="file")
        previous = ProductFile.objects.filter(product=product).first()
        old_name = previous.file.name if previous is not None else None
        product_file = previous or ProductFile(product=product)
        product_file.file.save(name, upload, save=False)
        product_file.name = name
        product_file.size = upload.size
        product_file.sha256 = digest.hexdigest()
        product_file.content_type = upload.content_type or "application/octet-stream"
        product_file.uploaded_at = timezone.now()
        product_file.save()
        stored = product_file.file.storage
        if old_name and old_name != product_file.file.name:
            transaction.on_commit(lambda: stored.delete(old_name))
    return product_file
