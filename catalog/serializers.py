from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import Delivery, Product, ProductCode, ProductFile
from config.money import AmountField

MAX_STOCK = 2**31 - 1  # the column is a 32-bit integer


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_STOCK, "nullable": True})
class StockField(serializers.Field):
    """A count of items: a non-negative integer, or null for unlimited. No strings, floats or booleans."""

    default_error_messages = {
        "invalid": "Must be a whole number of items (or null for unlimited stock).",
        "min_value": "Must be at least 0.",
        "max_value": f"Must be at most {MAX_STOCK}.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        if data < 0:
            self.fail("min_value")
        if data > MAX_STOCK:
            self.fail("max_value")
        return data

    def to_representation(self, value: int) -> int:
        return int(value)


class ProductSerializer(serializers.ModelSerializer):
    """What anyone sees of a public product."""

    merchant = serializers.CharField(source="merchant_id", read_only=True)
    stock = serializers.IntegerField(read_only=True, allow_null=True, help_text="null: unlimited")

    class Meta:
        model = Product
        fields: tuple[str, ...] = (
            "id",
            "merchant",
            "name",
            "description",
            "price",
            "currency",
            "stock",
            "is_active",
            "created_at",
        )
        read_only_fields: tuple[str, ...] = fields


class OwnProductSerializer(ProductSerializer):
    """What the owning merchant sees: the digital goods and the deletion time as well."""

    class Meta(ProductSerializer.Meta):
        fields = (
            *ProductSerializer.Meta.fields,
            "fulfillment",
            "delivery",
            "download_limit",
            "download_ttl_hours",
            "deleted_at",
            "updated_at",
        )
        read_only_fields = fields


class ProductWriteSerializer(serializers.Serializer):
    """Create (all rules) and PATCH (``partial=True``: only the fields sent)."""

    name = serializers.CharField(min_length=1, max_length=200)
    description = serializers.CharField(max_length=5000, allow_blank=True, required=False, trim_whitespace=False)
    price = AmountField()
    stock = StockField(required=False, help_text="null or absent: unlimited")
    fulfillment = serializers.CharField(
        max_length=5000, trim_whitespace=False, required=False, help_text="required for delivery text"
    )
    is_active = serializers.BooleanField(required=False)
    delivery = serializers.ChoiceField(choices=Delivery.choices, required=False, help_text="set at creation only")
    download_limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    download_ttl_hours = serializers.IntegerField(min_value=1, max_value=24 * 365, required=False)

    def validate_price(self, value: int) -> int:
        ceiling = settings.MAXIMUM_PRODUCT_PRICE
        if value > ceiling:
            raise serializers.ValidationError(f"Must be at most {ceiling}.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        text = attrs.get("delivery", Delivery.TEXT) == Delivery.TEXT
        if not self.partial and text and not (attrs.get("fulfillment") or "").strip():
            raise serializers.ValidationError({"fulfillment": "Required for a text product."})
        return attrs


class ProductPatchSerializer(ProductWriteSerializer):
    """PATCH: the fields sent, and optionally the stock the change was based on (a stale one → 409)."""

    expected_stock = StockField(
        required=False, help_text="the stock this change was based on (null = unlimited); stale → 409 invalid_status"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "expected_stock" in attrs and "stock" not in attrs:
            raise serializers.ValidationError({"expected_stock": "Send it with the stock it guards."})
        return super().validate(attrs)


class CodesAddSerializer(serializers.Serializer):
    codes = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=200, trim_whitespace=False),
        min_length=1,
        max_length=1000,
    )


class CodesAddedSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    stock = serializers.IntegerField()


class ProductCodeSerializer(serializers.ModelSerializer):
    order = serializers.SerializerMethodField()

    class Meta:
        model = ProductCode
        fields = ("code", "status", "order", "created_at", "sold_at")
        read_only_fields = fields

    def get_order(self, code: ProductCode) -> str | None:
        return code.order_id or None


class ProductFileUploadSerializer(serializers.Serializer):
    file = serializers.FileField()


class ProductFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProductFile
        fields = ("name", "size", "sha256", "content_type", "uploaded_at")
        read_only_fields = fields
