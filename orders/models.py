from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.ids import PublicIdField
from payments.models import PaymentMethodType


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    CANCELED = "canceled", "Canceled"
    FAILED = "failed", "Failed"


PAID_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)

# The only status changes an order can make; services check every change here.
# canceled/failed → paid exists for one case only: a card payment that succeeds
# after its reservation expired, when the stock can still be taken again
# (orders.services.outcomes.order_on_payment_changed).
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELED, OrderStatus.FAILED}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
    OrderStatus.CANCELED: frozenset({OrderStatus.PAID}),
    OrderStatus.FAILED: frozenset({OrderStatus.PAID}),
}


class Order(models.Model):
    id = PublicIdField("ord")
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )  # leads order_buyer_newest, which serves its lookups
    merchant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sales", db_index=False
    )  # leads order_merchant_newest, which serves its lookups
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.BigIntegerField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    fee = models.BigIntegerField()
    merchant_net = models.BigIntegerField()
    payment_method = models.CharField(max_length=16, choices=PaymentMethodType.choices)
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
            models.Index(
                fields=["reserved_until"], condition=Q(status=OrderStatus.PENDING), name="order_pending_expiry"
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_paid(self) -> bool:
        return self.status in PAID_STATUSES


# --- order events and their delivery to subscribers ---------------------------------


class OrderEventType(models.TextChoices):
    PAID = "order.paid", "order.paid"
    PARTIALLY_REFUNDED = "order.partially_refunded", "order.partially_refunded"
    REFUNDED = "order.refunded", "order.refunded"
    CANCELED = "order.canceled", "order.canceled"
    FAILED = "order.failed", "order.failed"
    PING = "ping", "ping"


class WebhookEndpoint(models.Model):
    """A merchant's URL that receives signed order events."""

    id = PublicIdField("whk")
    merchant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    # Signs every delivery (Standard Webhooks, ``whsec_<base64>``); shown to the merchant once.
    secret = models.CharField(max_length=64)
    # After a rotation the old secret signs beside the new one until it expires (24 h).
    previous_secret = models.CharField(max_length=64, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Event types delivered here; empty = all.
    events = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # Set by the first failed attempt after a success; 5 days of failures disable the endpoint.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Deleted endpoints are kept (their delivery history stays readable) but receive nothing.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["merchant", "-id"], condition=Q(deleted_at__isnull=True), name="webhook_live_newest")
        ]

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"


class OrderEvent(models.Model):
    """Something that happened to an order, written in the same transaction (an outbox row).

    ``dispatched_at`` is set once its deliveries exist; a sweep fans out the
    events whose after-commit task was lost.
    """

    id = PublicIdField("evt")
    # Null for a ``ping`` (a test event sent to one endpoint).
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    merchant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    type = models.CharField(max_length=32, choices=OrderEventType.choices)
    # One event per cause: a repeated call of an idempotent service emits nothing twice.
    key = models.CharField(max_length=128, unique=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(dispatched_at__isnull=True), name="order_event_undispatched"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.order_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (gave up)"


class EventDelivery(models.Model):
    """One event to one receiver: a merchant endpoint, or the internal ORDER_EVENTS_URL (endpoint null)."""

    id = PublicIdField("dlv")
    event = models.ForeignKey(OrderEvent, on_delete=models.PROTECT, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries"
    )
    url = models.CharField(max_length=2000)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due; also the lease of an attempt in flight.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], condition=Q(endpoint__isnull=False), name="delivery_one_per_endpoint"
            ),
            models.UniqueConstraint(fields=["event"], condition=Q(endpoint__isnull=True), name="delivery_one_internal"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status=DeliveryStatus.PENDING), name="delivery_pending_due"
            )
        ]
        verbose_name_plural = "event deliveries"

    def __str__(self) -> str:
        return f"{self.id} → {self.url}"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery: what the receiver answered, or why it could not."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(EventDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField()
    # The log's request and response summaries: which try, when it was signed, where it went, what came back.
    attempt = models.PositiveIntegerField(default=1)
    webhook_timestamp = models.BigIntegerField(null=True, blank=True)
    address = models.CharField(max_length=64, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="delivery_attempt_created")]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.status_code or self.error}"


class GoodsType(models.TextChoices):
    TEXT = "text", "Text"
    CODE = "code", "Code"
    LICENSE_KEY = "license_key", "Licence key"
    DOWNLOAD = "download", "Download"


class GoodsStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"  # a full refund or a lost dispute took it back


class Goods(models.Model):
    """One unit a paid order delivered (``orders.services.goods``): a text, a code, a licence key or a download.

    A download keeps only the sha256 of its link's token; a licence key is kept as it is (the buyer reads it
    again in the library, and the check looks it up by its unique index).
    """

    id = PublicIdField("gds")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="goods")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="+")
    type = models.CharField(max_length=16, choices=GoodsType.choices)
    value = models.TextField(blank=True)
    code = models.OneToOneField(
        "catalog.ProductCode", null=True, blank=True, on_delete=models.PROTECT, related_name="goods"
    )
    status = models.CharField(max_length=16, choices=GoodsStatus.choices, default=GoodsStatus.ACTIVE)
    token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    downloads_left = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["value"], condition=Q(type="license_key"), name="goods_license_key_unique"),
            models.CheckConstraint(
                condition=Q(downloads_left__isnull=True) | Q(downloads_left__gte=0), name="goods_downloads_left_gte_0"
            ),
            models.CheckConstraint(condition=Q(type__in=list(GoodsType.values)), name="goods_type_valid"),
        ]
        indexes = [models.Index(fields=["buyer", "-id"], name="goods_library_newest")]

    def __str__(self) -> str:
        return f"{self.type} {self.pk} ({self.status})"


class ReceiptDue(models.Model):
    """The outbox of receipts: a paid order whose receipt is still to go out (``orders.services.notices``).

    Written in the transaction that pays the order, so a receipt survives any crash after the commit;
    the drain (``receipts_send_due``) takes rows in batches, sends each receipt at most once through
    ``accounts.mail`` and deletes the row. ``claimed_at`` marks a row a drain is working on; a row
    claimed longer ago than the mail claim's staleness (a killed worker) is taken again.
    """

    order = models.OneToOneField(Order, primary_key=True, on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="receipt_due_oldest")]

    def __str__(self) -> str:
        return f"receipt due for {self.order_id}"
