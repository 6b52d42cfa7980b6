from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from catalog.storage import product_file_storage
from config.ids import PublicIdField


class Delivery(models.TextChoices):
    """What each unit sold hands the buyer; chosen at creation, never changed."""

    TEXT = "text", "The same text for every buyer"
    CODES = "codes", "One unique code from the product's pool"
    LICENSE_KEY = "license_key", "A licence key generated per unit"
    FILE = "file", "A personal download link to the product's file"


class Product(models.Model):
    """A merchant's digital product. ``stock`` None means unlimited."""

    id = PublicIdField("prd")
    merchant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="products", db_index=False
    )  # leads product_merchant_newest, which serves its lookups
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    price = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    stock = models.IntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    # The digital goods handed to the buyer once paid (licence key, download link…).
    fulfillment = models.TextField(max_length=5000, blank=True)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.TEXT)
    # file products: how many downloads each unit sold allows, and how long each link lives.
    download_limit = models.PositiveIntegerField(default=5)
    download_ttl_hours = models.PositiveIntegerField(default=72)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="product_price_gt_0"),
            models.CheckConstraint(condition=Q(stock__isnull=True) | Q(stock__gte=0), name="product_stock_gte_0"),
            models.CheckConstraint(condition=Q(delivery__in=list(Delivery.values)), name="product_delivery_valid"),
            # A code pool's stock is its count of available codes: never unlimited.
            models.CheckConstraint(
                condition=~Q(delivery=Delivery.CODES) | Q(stock__isnull=False), name="product_codes_stock_counted"
            ),
        ]
        indexes = [
            models.Index(
                fields=["-id"], condition=Q(is_active=True, deleted_at__isnull=True), name="product_public_newest"
            ),
            models.Index(fields=["merchant", "-id"], name="product_merchant_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def is_public(self) -> bool:
        return self.is_active and self.deleted_at is None


class CodeStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    SOLD = "sold", "Sold"  # also while the order holding it waits for its card payment
    REVOKED = "revoked", "Revoked"  # its order was refunded in full or lost a dispute: never sold again


class ProductCode(models.Model):
    """One unique code of a ``codes`` product's pool. The product's stock is the count of available ones.

    ``order_id`` names the order holding the code (a plain reference: orders sit above the catalog).
    """

    id = models.BigAutoField(primary_key=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="codes", db_index=False)
    code = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=CodeStatus.choices, default=CodeStatus.AVAILABLE)
    order_id = models.CharField(max_length=40, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    sold_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "code"], name="product_code_unique"),
            models.CheckConstraint(condition=Q(status__in=list(CodeStatus.values)), name="product_code_status_valid"),
            models.CheckConstraint(
                condition=Q(status=CodeStatus.AVAILABLE, order_id="")
                | (~Q(status=CodeStatus.AVAILABLE) & ~Q(order_id="")),
                name="product_code_held_by_order_unless_available",
            ),
        ]
        indexes = [
            # The purchase takes the lowest-numbered available codes.
            models.Index(fields=["product", "id"], condition=Q(status="available"), name="product_code_available"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} code {self.pk} ({self.status})"


def product_file_path(instance: ProductFile, filename: str) -> str:
    return f"products/{instance.product_id}/{filename}"


class ProductFile(models.Model):
    """The one file a ``file`` product sells (Django's storage API: ``MEDIA_ROOT`` or a configured backend)."""

    product = models.OneToOneField(Product, on_delete=models.PROTECT, primary_key=True, related_name="file")
    file = models.FileField(upload_to=product_file_path, max_length=500, storage=product_file_storage)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=200, default="application/octet-stream")
    uploaded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"
