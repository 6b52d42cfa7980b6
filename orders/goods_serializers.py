"""What the API shows of goods: an order's items, the buyer's library, a fresh link, a licence check.

Rendered by hand from ``orders.services.goods.goods_as_dict``; the fields document the shape.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from orders.models import Goods, GoodsStatus, GoodsType, Order
from orders.rendering import iso
from orders.services.goods import goods_as_dict


class GoodsSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=GoodsType.choices)
    value = serializers.CharField(allow_null=True, help_text="The text, code or licence key; null for a download.")
    url = serializers.URLField(
        allow_null=True,
        help_text="A download's live link (GET it for the file); null once it expired, was used up or revoked.",
    )
    refresh = serializers.URLField(
        allow_null=True,
        help_text="Where to POST for a fresh link (the previous one stops) while the download is active with "
        "downloads left; null otherwise and for every other type.",
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    downloads_left = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=GoodsStatus.choices)

    def to_representation(self, goods: Goods) -> dict[str, Any]:
        return goods_as_dict(goods, token=self.context.get("token"))


class LibraryItemSerializer(GoodsSerializer):
    order = serializers.CharField()
    product = serializers.CharField()
    created_at = serializers.DateTimeField()

    def to_representation(self, goods: Goods) -> dict[str, Any]:
        body = goods_as_dict(goods, token=self.context.get("token"))
        body.update(order=goods.order_id, product=goods.product_id, created_at=iso(goods.created_at))
        return body


def order_goods(order: Order) -> list[dict[str, Any]]:
    """A paid order's goods: the ones its purchase just made, else as stored (with their live links)."""
    fresh = getattr(order, "fresh_goods", None)
    tokens: dict[str, str] = getattr(order, "download_tokens", {})
    items = fresh if fresh is not None else sorted(order.goods.all(), key=lambda goods: goods.pk)
    return [goods_as_dict(goods, token=tokens.get(goods.pk)) for goods in items]


class LicenseCheckSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    status = serializers.ChoiceField(choices=GoodsStatus.choices)
    product = serializers.CharField()
