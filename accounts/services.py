"""Every write to users and their sessions."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.errors import EmailTaken, OtpRequired, WrongPassword
from accounts.models import AuditEvent, Role, User
from accounts.roles import StaffGroup
from config.errors import AuthenticationFailed, TokenInvalid, ValidationFailed
from config.request_context import current_request_id

TOTP_DEVICE_NAME = "back office"


def _check_password_strength(password: str, user: User, param: str) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), param=param) from exc


def user_register(*, email: str, password: str, role: str, first_name: str = "", last_name: str = "") -> User:
    """Creates a customer or merchant. Raises EmailTaken if the email is in use."""
    email = User.objects.normalize_email(email).lower()
    if role not in (Role.CUSTOMER, Role.MERCHANT):
        raise ValidationFailed("Role must be customer or merchant.", param="role")
    candidate = User(email=email, role=role, first_name=first_name, last_name=last_name)
    _check_password_strength(password, candidate, "password")
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken(param="email")
    try:
        with transaction.atomic():
            return User.objects.create_user(
                email=email, password=password, role=role, first_name=first_name, last_name=last_name
            )
    except IntegrityError as exc:  # two registrations racing for one email
        raise EmailTaken(param="email") from exc


def user_update(*, user: User, first_name: str | None = None, last_name: str | None = None) -> User:
    fields = []
    if first_name is not None:
        user.first_name = first_name
        fields.append("first_name")
    if last_name is not None:
        user.last_name = last_name
        fields.append("last_name")
    if fields:
        user.save(update_fields=fields)
    return user


def tokens_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def staff_otp_check(*, user: User, token: str | None) -> None:
    """With ``STAFF_OTP_REQUIRED`` (``DEBUG`` off) a staff user signs in only with a valid TOTP code.

    Raises ``OtpRequired`` (401 ``otp_required``); a code is good once (django-otp remembers the last one).
    """
    if not (settings.STAFF_OTP_REQUIRED and user.is_staff):
        return
    if not token or match_token(user, str(token).strip()) is None:
        raise OtpRequired()


def token_rotate(*, refresh: str) -> dict[str, str]:
    """Swaps a refresh token for a new pair. Each refresh token works once.

    Blacklisting the presented token is the claim on it: its blacklist row is
    unique, so of two concurrent refreshes with one token only one gets a pair.
    """
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]  # checks signature, expiry, blacklist
    except TokenError as exc:
        raise TokenInvalid(param="refresh") from exc
    user = User.objects.filter(pk=token.get("sub")).first()
    if user is None or not user.is_active:
        raise AuthenticationFailed("No active account found for this token.")
    with transaction.atomic():
        outstanding = OutstandingToken.objects.filter(jti=token.get("jti")).first()
        if outstanding is None:
            raise TokenInvalid(param="refresh")
        _, claimed = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not claimed:
        raise TokenInvalid(param="refresh")
    return tokens_for(user)


def user_logout(*, user: User, refresh: str) -> None:
    """Blacklists the user's own refresh token; a token of someone else is invalid."""
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]
    except Exception as exc:  # simplejwt raises TokenError for every malformed or expired token
        raise TokenInvalid(param="refresh") from exc
    if str(token.get("sub")) != str(user.pk):
        raise TokenInvalid(param="refresh")
    token.blacklist()


def user_change_password(*, user: User, old_password: str, new_password: str) -> None:
    """Sets a new password and revokes every refresh token the user holds."""
    if not user.check_password(old_password):
        raise WrongPassword(param="old_password")
    _check_password_strength(new_password, user, "new_password")
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
        )


def audit_record(
    *, actor: User | None, action: str, object_type: str, object_id: str, data: dict | None = None
) -> AuditEvent:
    """Appends one line to the audit trail (inside the caller's transaction, so it commits with the change)."""
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        data=data or {},
        request_id=current_request_id() or "",
    )


def staff_upsert(*, email: str, group: str, password: str | None = None, actor: User | None = None) -> User:
    """Makes or updates a staff user in exactly one of the roles Support or Finance; audited.

    A new user without ``password`` gets an unusable one (to be set by a reset). Raises ValidationFailed.
    """
    roles = {role.value for role in StaffGroup}
    if group not in roles:
        raise ValidationFailed(f"Group must be one of {', '.join(sorted(roles))}.", param="group")
    email = User.objects.normalize_email(email).strip().lower()
    if not email or "@" not in email:
        raise ValidationFailed("An email address is required.", param="email")
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email__iexact=email).first()
        created = user is None
        if user is None:
            user = User(email=email)
        if password is not None:
            _check_password_strength(password, user, "password")
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.is_staff = True
        user.is_active = True
        user.save()
        user.groups.remove(*Group.objects.filter(name__in=roles - {group}))
        user.groups.add(Group.objects.get(name=group))
        audit_record(
            actor=actor,
            action="staff.create" if created else "staff.update",
            object_type="user",
            object_id=user.pk,
            data={"email": email, "group": group, "password_set": password is not None},
        )
    return user


def staff_totp_device(*, user: User) -> TOTPDevice:
    """The staff user's TOTP device (made on first need, confirmed): its ``config_url`` is the provisioning URI."""
    device = TOTPDevice.objects.filter(user=user, name=TOTP_DEVICE_NAME).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=True)
    return device
