"""Back office for products: edits and bulk (de)activation, each recorded in the audit trail with what
the staff user did; products are soft-deleted, never removed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from catalog.cache import catalog_cache_bump_on_commit
from catalog.models import Delivery, Product, ProductCode, ProductFile
from config.admin import HistoryMixin, ReadOnlyAdmin, ReadOnlyInline
from config.audit import audit_reason


class ProductFileInline(ReadOnlyInline):
    model = ProductFile
    fields = ("name", "size", "sha256", "content_type", "uploaded_at")
    readonly_fields = fields


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> QuerySet[Product]:
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        return queryset


@admin.register(Product)
class ProductAdmin(HistoryMixin, admin.ModelAdmin):
    list_display = ("name", "id", "merchant", "price", "currency", "stock", "is_active", "deleted_at", "created_at")
    list_filter = ("is_active", DeletedFilter, "currency", "created_at")
    search_fields = ("name", "=id", "merchant__email")
    list_select_related = ("merchant",)
    readonly_fields = (
        "id", "currency", "stock", "delivery", "download_limit", "download_ttl_hours", "created_at", "updated_at",
        "deleted_at",
    )  # fmt: skip
    raw_id_fields = ("merchant",)
    date_hierarchy = "created_at"
    actions = ("deactivate", "activate", "soft_delete")
    fields = (
        "id",
        "merchant",
        "name",
        "description",
        "price",
        "currency",
        "stock",
        "is_active",
        "delivery",
        "download_limit",
        "download_ttl_hours",
        "fulfillment",
        "created_at",
        "updated_at",
        "deleted_at",
        "audit_history",
    )

    def get_inlines(self, request: HttpRequest, obj: Product | None) -> list[type[admin.options.InlineModelAdmin]]:
        return [ProductFileInline] if obj is not None and obj.delivery == Delivery.FILE else []

    def has_delete_permission(self, request: HttpRequest, obj: Product | None = None) -> bool:
        # Products are kept for orders and audit: staff soft-delete them instead.
        return False

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        if not change:
            obj.currency = obj.currency or settings.PLATFORM_CURRENCY
        with transaction.atomic():
            if change:
                # Only what this form changed: the stock is read-only here (units sell meanwhile) and the
                # rest of the row is never written back from the page's copy.
                obj.save(update_fields=[*(f for f in form.changed_data if f != "stock"), "updated_at"])
            else:
                super().save_model(request, obj, form, change)
            catalog_cache_bump_on_commit()

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Product], message: str, **values: Any) -> None:
        with audit_reason(f"admin bulk action: {message}"), transaction.atomic():
            count = queryset.update(updated_at=timezone.now(), **values)
            catalog_cache_bump_on_commit()
        self.message_user(request, f"{count} product(s) {message}.", messages.SUCCESS)

    @admin.action(description="Deactivate (hide from the catalog)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        self._bulk(request, queryset, "deactivated", is_active=False)

    @admin.action(description="Activate")
    def activate(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        self._bulk(request, queryset, "activated", is_active=True)

    @admin.action(description="Soft-delete (hidden, kept for orders)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        self._bulk(request, queryset.filter(deleted_at__isnull=True), "deleted", deleted_at=timezone.now())


@admin.register(ProductCode)
class ProductCodeAdmin(ReadOnlyAdmin):
    """The code pools: each code's status and the order holding it (codes change only through services)."""

    list_display = ("code", "product", "status", "order_id", "sold_at", "created_at")
    list_filter = ("status",)
    search_fields = ("=code", "=product__id", "=order_id")
    list_select_related = ("product",)
    raw_id_fields = ("product",)
