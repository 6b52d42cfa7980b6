"""The public product's JSON, built from plain rows: one representation for list and detail.

``ProductSerializer`` documents the same shape for the OpenAPI schema; a test
keeps the two identical. Building the body without DRF's machinery keeps a
cache miss cheap too (a cold catalog is mostly misses of distinct products).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from catalog.models import Product

PUBLIC_COLUMNS = ("id", "merchant_id", "name", "description", "price", "currency", "stock", "is_active", "created_at")


def _timestamp(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def public_product(row: dict[str, Any]) -> dict[str, Any]:
    """``row``: a ``values(*PUBLIC_COLUMNS)`` row of a product."""
    return {
        "id": row["id"],
        "merchant": row["merchant_id"],
        "name": row["name"],
        "description": row["description"],
        "price": row["price"],
        "currency": row["currency"],
        "stock": row["stock"],
        "is_active": row["is_active"],
        "created_at": _timestamp(row["created_at"]),
    }


def public_rows(queryset: QuerySet[Product]) -> QuerySet[Product, dict[str, Any]]:
    return queryset.values(*PUBLIC_COLUMNS)


def to_json(data: Any) -> bytes:
    """The bytes DRF's JSONRenderer would produce (compact, UTF-8)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
