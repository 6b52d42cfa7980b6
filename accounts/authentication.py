"""JWT authentication that also tags the request's log lines with the user id."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.http import HttpRequest
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import Token

from accounts.models import User
from config.db import prepared_cursor
from config.request_context import user_id_var

_REMEMBERED = "_validated_access_token"
_REMEMBERED_USER = "_user_read_early"


def remember_validated_token(request: HttpRequest, raw: bytes, token: Token) -> None:
    """Keeps a token validated before DRF runs (the idempotency middleware's scope) for the view's
    authentication, so one request checks one signature once."""
    setattr(request, _REMEMBERED, (raw, token))


def remember_user(request: HttpRequest, user: User | None) -> None:
    """Keeps the user row a statement read before DRF runs (the idempotency claim reads it beside its insert)
    for the view's authentication, which then makes no query of its own; None: the row was not found."""
    setattr(request, _REMEMBERED_USER, user)


class JWTAuthentication(_JWTAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = self.get_header(request)
        raw = None if header is None else self.get_raw_token(header)
        if raw is None:
            return None
        remembered = getattr(request, _REMEMBERED, None)  # DRF's Request reads through to the HttpRequest
        validated = remembered[1] if remembered is not None and remembered[0] == raw else None
        if validated is None:
            validated = self.get_validated_token(raw)
        user = self._user_read_early(request, validated) or self.get_user(validated)
        user_id_var.set(str(user.pk))
        return user, validated

    @staticmethod
    def _user_read_early(request: Request, validated_token: Token) -> Any:
        """The token's user if the request read it already (``remember_user``), with simplejwt's refusals;
        None when it was not read (or was read for another id): ``get_user`` reads it then."""
        user = getattr(request, _REMEMBERED_USER, None)
        user_id = validated_token.get(jwt_settings.USER_ID_CLAIM)
        if user is None or user_id is None or jwt_settings.CHECK_REVOKE_TOKEN or str(user.pk) != str(user_id):
            return None
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        return user

    def get_user(self, validated_token: Token) -> Any:
        """simplejwt's look-up and refusals, with the user read by one prepared statement: every
        authenticated request makes it, and the ORM's query building cost more than the query."""
        user_id = validated_token.get(jwt_settings.USER_ID_CLAIM)
        if user_id is None or jwt_settings.CHECK_REVOKE_TOKEN:
            return super().get_user(validated_token)
        user = _user_by_id(str(user_id))
        if user is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        return user


_USER_FIELDS = [field.attname for field in User._meta.concrete_fields]
_USER_SQL = (
    f"SELECT {', '.join(connection.ops.quote_name(f) for f in _USER_FIELDS)}"  # noqa: S608 - the model's own names
    f" FROM {connection.ops.quote_name(User._meta.db_table)} WHERE id = %s"
)


def _user_by_id(user_id: str) -> User | None:
    with prepared_cursor() as cursor:
        cursor.execute(_USER_SQL, [user_id])
        row = cursor.fetchone()
    return None if row is None else user_from_row(row)


def user_select(user_id: str) -> tuple[str, list[Any]]:
    """The SELECT ``get_user`` makes, for a statement that reads the user beside its own work."""
    return _USER_SQL, [user_id]


def user_from_row(row: tuple[Any, ...]) -> User:
    return User.from_db(DEFAULT_DB_ALIAS, _USER_FIELDS, row)


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Documents our subclass as the bearer-JWT security scheme of the OpenAPI document."""

    target_class = "accounts.authentication.JWTAuthentication"
