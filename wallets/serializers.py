from __future__ import annotations

from rest_framework import serializers

from config.money import AmountField
from wallets.models import Deposit, Posting, Withdrawal


class WalletSerializer(serializers.Serializer):
    balance = serializers.IntegerField(help_text="What can be spent now, in minor units.")
    withdrawable = serializers.IntegerField(
        help_text="The part of the balance that can be withdrawn now (card top-ups wait DEPOSIT_COOLING_OFF_HOURS)."
    )
    pending = serializers.IntegerField(help_text="Held by withdrawals in flight and open disputes.")
    incoming = serializers.IntegerField(
        help_text="A merchant's card-sale income not yet available (MERCHANT_AVAILABILITY_DAYS)."
    )
    currency = serializers.CharField()


class WalletQuerySerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, help_text="ISO-8601: the wallet as it was then.")


class TransactionSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(source="entry.kind")
    currency = serializers.CharField(source="entry.currency")
    reference = serializers.CharField(source="entry.reference")
    balance_before = serializers.IntegerField(allow_null=True)
    balance_after = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Posting
        fields = ("id", "kind", "amount", "currency", "balance_before", "balance_after", "reference", "created_at")


class DepositCreateSerializer(serializers.Serializer):
    amount = AmountField()
    payment_method = serializers.CharField(max_length=255, help_text="A saved card (pm_…).")


class DepositSerializer(serializers.ModelSerializer):
    payment = serializers.CharField(source="payment_id", allow_null=True)

    class Meta:
        model = Deposit
        fields = ("id", "status", "amount", "currency", "payment", "created_at", "completed_at")


class WithdrawalCreateSerializer(serializers.Serializer):
    amount = AmountField()


class WithdrawalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Withdrawal
        fields = ("id", "status", "amount", "currency", "reason", "created_at", "decided_at")


class StaffWithdrawalSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user_id")
    email = serializers.EmailField(source="user.email")
    first_approved_by = serializers.CharField(source="first_approved_by_id", allow_null=True)
    decided_by = serializers.CharField(source="decided_by_id", allow_null=True)

    class Meta:
        model = Withdrawal
        fields = (
            "id",
            "status",
            "amount",
            "currency",
            "user",
            "email",
            "reason",
            "first_approved_by",
            "first_approved_at",
            "decided_by",
            "decided_at",
            "created_at",
        )


class WithdrawalDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, help_text="Why: every money decision records one.")
