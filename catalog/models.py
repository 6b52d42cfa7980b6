from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.ids import PublicIdField


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
    fulfillment = models.TextField(max_length=5000)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="product_price_gt_0"),
            models.CheckConstraint(condition=Q(stock__isnull=True) | Q(stock__gte=0), name="product_stock_gte_0"),
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
