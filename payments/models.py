"""Our own record of every charge (``Payment``), its refunds and disputes.

A card payment links to Stripe's PaymentIntent by id (and to dj-stripe's
mirror of it once synced); a wallet payment never leaves the ledger.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from config.ids import PublicIdField


class PaymentKind(models.TextChoices):
    ORDER = "order", "Order"
    DEPOSIT = "deposit", "Deposit"


class PaymentMethodType(models.TextChoices):
    WALLET = "wallet", "Wallet"
    CARD = "card", "Card"


class PaymentStatus(models.TextChoices):
    """Mirrors Stripe's PaymentIntent statuses, plus ``failed``."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method", "Requires payment method"
    REQUIRES_ACTION = "requires_action", "Requires action"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    CANCELED = "canceled", "Canceled"
    FAILED = "failed", "Failed"


FINAL_PAYMENT_STATUSES = (PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED, PaymentStatus.FAILED)


class Payment(models.Model):
    id = PublicIdField("pay")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments", db_index=False
    )  # leads payment_user_newest, which serves its lookups
    kind = models.CharField(max_length=16, choices=PaymentKind.choices)
    method = models.CharField(max_length=16, choices=PaymentMethodType.choices)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=32, choices=PaymentStatus.choices, default=PaymentStatus.REQUIRES_PAYMENT_METHOD
    )
    # Reserved by pending refunds and kept by succeeded ones.
    amount_refunded = models.BigIntegerField(default=0)
    stripe_payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    client_secret = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # The API request that created it (``config.request_keys``): a retry of that request resumes this payment.
    request_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    # Set when Stripe's object disagrees with ours (amount, currency): nothing moves until staff look.
    flagged_reason = models.CharField(max_length=255, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount")),
                name="payment_refunded_within_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="payment_user_newest"),
            models.Index(fields=["status", "id"], name="payment_status"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def refundable_amount(self) -> int:
        return self.amount - self.amount_refunded


class RefundStatus(models.TextChoices):
    # A staff refund at or above FOUR_EYES_THRESHOLD waits for a second, different Finance user.
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Refund(models.Model):
    id = PublicIdField("ref")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    reason = models.CharField(max_length=255, blank=True)
    stripe_refund_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    failure_message = models.CharField(max_length=255, blank=True)
    # Four eyes: who approved (or rejected) a refund that waited in ``pending_approval``, and why.
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=255, blank=True)
    # What this refund took back from the merchant's net and the platform fee
    # (cumulative rounding: all refunds of an order reverse exactly its fee and net).
    fee_reversed = models.BigIntegerField(default=0)
    net_reversed = models.BigIntegerField(default=0)
    # Made outside the platform (Stripe's dashboard) and recorded when Stripe told us.
    external = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_gt_0"),
            # Four eyes, the database's last word: the requester never approves their own refund.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("requested_by")),
                name="refund_approver_not_requester",
            ),
        ]
        indexes = [models.Index(fields=["status", "id"], name="refund_status")]

    def __str__(self) -> str:
        return self.id


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    # An inquiry (Stripe's ``warning_*``) that closed without a chargeback: the hold is released.
    WARNING_CLOSED = "warning_closed", "Inquiry closed"


class Dispute(models.Model):
    """A chargeback: the merchant's net for the order is held until staff resolve it."""

    id = PublicIdField("dsp")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    amount = models.BigIntegerField()
    held_amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=DisputeStatus.choices, default=DisputeStatus.OPEN)
    reason = models.CharField(max_length=64, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.id


class StripeCustomer(models.Model):
    """The one Stripe customer of a user: the unique row makes concurrent first uses agree."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.PROTECT, related_name="stripe_customer"
    )
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.stripe_customer_id or f"(pending for {self.user_id})"


class SavedCard(models.Model):
    """A card the user saved (Stripe PaymentMethod); never the number, only what a receipt shows."""

    id = models.CharField(max_length=255, primary_key=True)  # pm_…
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="saved_cards")
    brand = models.CharField(max_length=32, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(is_default=True), name="saved_card_one_default"),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="saved_card_user_newest")]

    def __str__(self) -> str:
        return f"{self.brand} ****{self.last4}"


class StripeEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (type not handled)"
    FAILED = "failed", "Failed"


class StripeEvent(models.Model):
    """One row per Stripe event id: claiming it is what makes every event apply once."""

    id = models.CharField(max_length=255, primary_key=True)  # evt_…
    type = models.CharField(max_length=128)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=StripeEventStatus.choices, default=StripeEventStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "received_at"], name="stripe_event_status")]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class ReconcileRun(models.Model):
    """One run of ``manage.py reconcile``: what it compared with Stripe and how it ended."""

    id = PublicIdField("rcn")
    since = models.DateTimeField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    matched = models.PositiveIntegerField(default=0)
    fixed = models.PositiveIntegerField(default=0)
    mismatched = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.id} since {self.since:%Y-%m-%d}"


class ReconcileOutcome(models.TextChoices):
    MATCHED = "matched", "Matched"
    FIXED = "fixed", "Fixed"
    MISMATCHED = "mismatched", "Mismatched"


class ReconcileItem(models.Model):
    """One object compared in a run (a payment, refund, event, the clearing account), and the field that differs."""

    run = models.ForeignKey(ReconcileRun, on_delete=models.CASCADE, related_name="items")
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, choices=ReconcileOutcome.choices)
    field = models.CharField(max_length=64, blank=True)
    ours = models.CharField(max_length=255, blank=True)
    stripe = models.CharField(max_length=255, blank=True)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "outcome"], name="reconcile_item_run_outcome")]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id}: {self.outcome}"
