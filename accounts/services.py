"""Every write to users and their sessions."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.errors import EmailTaken, WrongPassword
from accounts.models import AuditEvent, Role, User
from config.errors import AuthenticationFailed, TokenInvalid, ValidationFailed
from config.request_context import current_request_id


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
