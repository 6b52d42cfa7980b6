from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.ids import PublicIdField


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    CANCELED = "canceled", "Canceled"
    FAILED = "failed", "Failed"


# The only status changes an order can make; services check every change here.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELED, OrderStatus.FAILED}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.FAILED: frozenset(),
}


class Order(models.Model):
    id = PublicIdField("ord")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    merchant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sales")
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.BigIntegerField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    fee = models.BigIntegerField()
    merchant_net = models.BigIntegerField()
    payment_method = models.CharField(max_length=16)
    status = models.CharField(max_length=32, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    payment = models.OneToOneField(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="order"
    )
    # Copied from the product when paid: what the buyer bought stays theirs.
    fulfillment = models.TextField(blank=True)
    # Card orders hold their stock until this moment.
    reserved_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_quantity_gte_1"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="order_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(fee__gte=0) & Q(merchant_net__gte=0) & Q(amount=models.F("fee") + models.F("merchant_net")),
                name="order_fee_plus_net_is_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["buyer", "-id"], name="order_buyer_newest"),
            models.Index(fields=["merchant", "-id"], name="order_merchant_newest"),
            models.Index(fields=["reserved_until"], condition=Q(status="pending"), name="order_pending_expiry"),
        ]

    def __str__(self) -> str:
        return self.id
