from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

from config.ids import PublicIdField


class Role(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    MERCHANT = "merchant", "Merchant"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: Any) -> User:
        if not email:
            raise ValueError("An email is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields["is_staff"] = True
        fields["is_superuser"] = True
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: customer or merchant by ``role``; staff through ``is_staff``."""

    id = PublicIdField("usr")
    email = models.EmailField(unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CUSTOMER)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=list(Role.values)), name="user_role_valid"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_customer(self) -> bool:
        return self.role == Role.CUSTOMER

    @property
    def is_merchant(self) -> bool:
        return self.role == Role.MERCHANT

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email


class AuditEvent(models.Model):
    """What staff and the system did to money and access: append-only."""

    id = models.BigAutoField(primary_key=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-id",)

    def __str__(self) -> str:
        return f"{self.action} {self.object_id}"


class IdempotencyKeyStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key``: the claim on it and, once done, the response to replay.

    The row itself is the lock: inserting it (unique per scope and key, in its
    own committed transaction) claims the key across every worker and machine.
    """

    id = models.BigAutoField(primary_key=True)
    # "usr:<user id>" for authenticated calls, "ip:<address>" for anonymous ones.
    scope = models.CharField(max_length=80)
    key = models.CharField(max_length=255)
    # sha256 of method, path and body: the same key with another request is refused.
    request_hash = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=512)
    status = models.CharField(
        max_length=16, choices=IdempotencyKeyStatus.choices, default=IdempotencyKeyStatus.IN_PROGRESS
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=128, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the claim was (re)taken: an in-progress claim older than the lock timeout is abandoned.
    locked_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} ({self.status})"


class BackOffice(models.Model):
    """No table: the holder of the back office's own permissions, which the groups Support and Finance carry."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("refund", "Can refund orders (up to SUPPORT_REFUND_LIMIT)"),
            ("refund_any_amount", "Can refund any amount"),
            ("decide_withdrawals", "Can approve and reject withdrawals"),
            ("decide_staff_refunds", "Can approve and reject staff refunds awaiting approval"),
            ("resolve_disputes", "Can resolve disputes"),
            ("replay_events", "Can replay Stripe events"),
        ]

    def __str__(self) -> str:
        return "back office"


class SentEmailStatus(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"


class SentEmail(models.Model):
    """One message the platform sends at most once, by its key (``accounts.mail.mail_send_once``).

    The row is the claim: inserted before the message goes out, marked sent after. A retried task finds it.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=200)
    to = models.EmailField()
    template = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=SentEmailStatus.choices, default=SentEmailStatus.SENDING)
    claimed_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key"], name="sent_email_key_unique")]

    def __str__(self) -> str:
        return f"{self.template} to {self.to} ({self.status})"
