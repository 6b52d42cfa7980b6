from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from orders.goods_serializers import GoodsSerializer, order_goods
from orders.models import Order, OrderStatus
from orders.rendering import iso, sale_object
from payments.models import PaymentMethodType, PaymentStatus


class StrictIntegerField(serializers.IntegerField):
    """An integer, and only an integer: "2", 2.0 and true are refused."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class OrderCreateSerializer(serializers.Serializer):
    product = serializers.CharField(max_length=64, help_text="The product's id (prd_…).")
    quantity = StrictIntegerField(min_value=1, max_value=settings.MAXIMUM_ORDER_QUANTITY, default=1)
    payment_method = serializers.ChoiceField(choices=PaymentMethodType.choices)
    card = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        help_text="Card orders: a saved payment method (pm_…); absent: the default card.",
    )


class OrderSerializer(serializers.Serializer):
    """An order as its buyer sees it. Rendered by hand (hot path); the fields document it."""

    id = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    product = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.IntegerField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    payment_method = serializers.ChoiceField(choices=PaymentMethodType.choices)
    payment = serializers.CharField(allow_null=True)
    fulfillment = serializers.CharField(allow_null=True, help_text="The digital goods; null until paid.")
    client_secret = serializers.CharField(
        allow_null=True, help_text="Card payments needing customer action (3-D Secure): confirm client-side."
    )
    reserved_until = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    goods = GoodsSerializer(many=True, allow_null=True, help_text="Once paid: one item per unit.")

    def to_representation(self, order: Order) -> dict[str, Any]:
        payment = order.payment
        needs_action = payment is not None and payment.status == PaymentStatus.REQUIRES_ACTION
        return {
            "id": order.pk,
            "status": order.status,
            "product": order.product_id,
            "quantity": order.quantity,
            "unit_price": order.unit_price,
            "amount": order.amount,
            "currency": order.currency,
            "payment_method": order.payment_method,
            "payment": order.payment_id,
            "fulfillment": order.fulfillment if order.paid_at is not None else None,
            "client_secret": payment.client_secret or None if needs_action and payment is not None else None,
            "reserved_until": iso(order.reserved_until) if order.status == OrderStatus.PENDING else None,
            "created_at": iso(order.created_at),
            "paid_at": iso(order.paid_at),
            "goods": order_goods(order) if order.paid_at is not None else None,
        }


class SaleSerializer(serializers.Serializer):
    """An order of one of the merchant's products, with the platform fee and what the merchant nets."""

    id = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    product = serializers.CharField()
    buyer = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.IntegerField()
    amount = serializers.IntegerField()
    fee = serializers.IntegerField()
    merchant_net = serializers.IntegerField()
    currency = serializers.CharField()
    payment_method = serializers.ChoiceField(choices=PaymentMethodType.choices)
    payment = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, order: Order) -> dict[str, Any]:
        return sale_object(order)


class SalesQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="ISO-8601; orders created at or after it.")
