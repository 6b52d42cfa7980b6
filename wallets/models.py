"""The double-entry ledger: accounts, immutable entries and their postings.

Sign convention: a posting's ``amount`` is what the account gains (credit to
the holder). Each entry's postings sum to zero. A wallet's ``balance`` is the
sum of its postings and is what the holder can spend; ``held`` is money taken
out of that balance but still owed to the holder (withdrawals in flight,
disputed sales). Platform accounts keep no balance column: their balance is
the sum of their postings (they are hot rows every purchase would touch).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from config.ids import PublicIdField


class AccountKind(models.TextChoices):
    CUSTOMER = "customer", "Customer wallet"
    MERCHANT = "merchant", "Merchant balance"
    CARD_CLEARING = "card_clearing", "Card clearing (Stripe)"
    PLATFORM_FEES = "platform_fees", "Platform fees"
    WITHDRAWALS_IN_FLIGHT = "withdrawals_in_flight", "Withdrawals in flight"
    PAYOUTS = "payouts", "Paid out"
    DISPUTES = "disputes", "Disputed funds"
    ADJUSTMENTS = "adjustments", "Adjustments"
    # A merchant's card-sale income until MERCHANT_AVAILABILITY_DAYS pass: owned, not spendable.
    INCOMING = "incoming", "Merchant income not yet available"


# A user's one spendable wallet per currency.
WALLET_KINDS = (AccountKind.CUSTOMER, AccountKind.MERCHANT)
# Accounts a user owns: the wallet, and a merchant's incoming account beside it.
OWNED_KINDS = (*WALLET_KINDS, AccountKind.INCOMING)
PLATFORM_KINDS = tuple(kind for kind in AccountKind if kind not in OWNED_KINDS)


class EntryKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    PURCHASE = "purchase", "Purchase"
    REFUND = "refund", "Refund"
    WITHDRAWAL_HOLD = "withdrawal_hold", "Withdrawal hold"
    WITHDRAWAL_PAID = "withdrawal_paid", "Withdrawal paid"
    WITHDRAWAL_RELEASED = "withdrawal_released", "Withdrawal released"
    DISPUTE_HOLD = "dispute_hold", "Dispute hold"
    DISPUTE_RELEASED = "dispute_released", "Dispute released"
    DISPUTE_LOST = "dispute_lost", "Dispute lost"
    ADJUSTMENT = "adjustment", "Adjustment"
    INCOME_RELEASED = "income_released", "Income made available"


class Account(models.Model):
    id = PublicIdField("acc")
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    currency = models.CharField(max_length=3)
    balance = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "currency"],
                condition=Q(owner__isnull=False, kind__in=list(WALLET_KINDS)),
                name="account_one_wallet_per_currency",
            ),
            models.UniqueConstraint(
                fields=["owner", "currency"],
                condition=Q(kind=AccountKind.INCOMING),
                name="account_one_incoming_per_currency",
            ),
            models.UniqueConstraint(
                fields=["kind", "currency"], condition=Q(owner__isnull=True), name="account_one_platform_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=list(PLATFORM_KINDS)) | Q(balance__gte=0), name="account_wallet_balance_gte_0"
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="account_held_gte_0"),
            models.CheckConstraint(
                condition=(Q(kind__in=list(OWNED_KINDS)) & Q(owner__isnull=False))
                | (Q(kind__in=list(PLATFORM_KINDS)) & Q(owner__isnull=True)),
                name="account_owner_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.currency} ({self.owner_id or 'platform'})"

    @property
    def is_wallet(self) -> bool:
        return self.kind in WALLET_KINDS


class ImmutableQuerySet(models.QuerySet):
    """Ledger rows are written once: corrections are new entries, never edits."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise TypeError("ledger rows are immutable")

    def delete(self) -> NoReturn:
        raise TypeError("ledger rows are immutable")


class ImmutableModel(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("ledger rows are immutable")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("ledger rows are immutable")


class Entry(ImmutableModel):
    """One money movement; its postings sum to zero."""

    id = PublicIdField("ent")
    kind = models.CharField(max_length=32, choices=EntryKind.choices)
    currency = models.CharField(max_length=3)
    # What caused it (ord_…, pay_…, ref_…, wdr_…, dep_…, dsp_…).
    reference = models.CharField(max_length=64, db_index=True)
    # The same cause can never post twice.
    idempotency_key = models.CharField(max_length=128, unique=True)
    memo = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "entries"

    def __str__(self) -> str:
        return f"{self.id} {self.kind} {self.reference}"


class Posting(ImmutableModel):
    """One leg of an entry: what one account gains (positive) or gives (negative)."""

    id = PublicIdField("txn")
    entry = models.ForeignKey(Entry, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="postings", db_index=False
    )  # leads posting_account_newest, which serves its lookups
    amount = models.BigIntegerField()
    # Wallet legs only: the account's balance right after this posting.
    balance_after = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="posting_amount_not_0")]
        indexes = [models.Index(fields=["account", "-id"], name="posting_account_newest")]

    def __str__(self) -> str:
        return f"{self.id} {self.account_id} {self.amount:+d}"

    @property
    def balance_before(self) -> int | None:
        return None if self.balance_after is None else self.balance_after - self.amount


class DepositStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Deposit(models.Model):
    """A wallet top-up paid by card; credits the wallet once its payment succeeds."""

    id = PublicIdField("dep")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="deposits")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=DepositStatus.choices, default=DepositStatus.PENDING)
    payment = models.OneToOneField(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="deposit"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_amount_gt_0")]

    def __str__(self) -> str:
        return self.id


class WithdrawalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    AWAITING_SECOND_APPROVAL = "awaiting_second_approval", "Awaiting a second approval"
    PAID = "paid", "Paid"
    REJECTED = "rejected", "Rejected"


# Still held from the wallet: staff have not decided yet (or only one of two approvers has).
WITHDRAWAL_OPEN_STATUSES = (WithdrawalStatus.PENDING, WithdrawalStatus.AWAITING_SECOND_APPROVAL)


class Withdrawal(models.Model):
    """Two-phase: the amount is held at once; staff approve (paid) or reject (released).

    At or above ``FOUR_EYES_THRESHOLD`` the first approval only records its approver
    (``awaiting_second_approval``); a second, different Finance user's approval pays it.
    """

    id = PublicIdField("wdr")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="withdrawals")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32, choices=WithdrawalStatus.choices, default=WithdrawalStatus.PENDING)
    reason = models.CharField(max_length=255, blank=True)
    first_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    first_approved_at = models.DateTimeField(null=True, blank=True)
    first_approval_reason = models.CharField(max_length=255, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_amount_gt_0"),
            # Four eyes, the database's last word: whoever gave the first approval never gives the second.
            models.CheckConstraint(
                condition=Q(first_approved_by__isnull=True)
                | Q(decided_by__isnull=True)
                | ~Q(first_approved_by=F("decided_by")),
                name="withdrawal_two_different_approvers",
            ),
        ]
        indexes = [models.Index(fields=["status", "id"], name="withdrawal_status")]

    def __str__(self) -> str:
        return self.id
