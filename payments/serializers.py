from __future__ import annotations

from typing import Any

from rest_framework import serializers

from config.money import AmountField
from payments.models import Payment, Refund, SavedCard


class PaymentSerializer(serializers.ModelSerializer):
    stripe_payment_intent = serializers.CharField(source="stripe_payment_intent_id", allow_null=True)
    amount = serializers.IntegerField()
    amount_refunded = serializers.IntegerField()

    class Meta:
        model = Payment
        fields = (
            "id",
            "kind",
            "amount",
            "currency",
            "status",
            "amount_refunded",
            "stripe_payment_intent",
            "created_at",
        )
        read_only_fields = fields


class SavedCardSerializer(serializers.ModelSerializer):
    class Meta:
        model = SavedCard
        fields = ("id", "brand", "last4", "exp_month", "exp_year", "is_default", "created_at")
        read_only_fields = fields


class PaymentMethodAttachSerializer(serializers.Serializer):
    payment_method = serializers.RegexField(r"^pm_[A-Za-z0-9_]{1,250}$", max_length=255)


class SetupIntentSerializer(serializers.Serializer):
    client_secret = serializers.CharField()


class RefundCreateSerializer(serializers.Serializer):
    order = serializers.RegexField(r"^ord_[0-9A-Z]{26}$", max_length=30)
    amount = AmountField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")


class RefundSerializer(serializers.ModelSerializer):
    order = serializers.SerializerMethodField()
    amount = serializers.IntegerField()

    class Meta:
        model = Refund
        fields = ("id", "order", "payment", "amount", "currency", "status", "reason", "created_at")
        read_only_fields = fields

    def get_order(self, refund: Refund) -> str | None:
        order: Any = getattr(refund.payment, "order", None)
        return order.pk if order is not None else None
