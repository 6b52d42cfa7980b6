"""JWT authentication that also tags the request's log lines with the user id."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from config.request_context import user_id_var

_REMEMBERED = "_validated_access_token"


def remember_validated_token(request: HttpRequest, raw: bytes, token: Token) -> None:
    """Keeps a token validated before DRF runs (the idempotency middleware's scope) for the view's
    authentication, so one request checks one signature once."""
    setattr(request, _REMEMBERED, (raw, token))


class JWTAuthentication(_JWTAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = self.get_header(request)
        raw = None if header is None else self.get_raw_token(header)
        if raw is None:
            return None
        remembered = getattr(request._request, _REMEMBERED, None)
        validated = remembered[1] if remembered is not None and remembered[0] == raw else None
        if validated is None:
            validated = self.get_validated_token(raw)
        user = self.get_user(validated)
        user_id_var.set(str(user.pk))
        return user, validated


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Documents our subclass as the bearer-JWT security scheme of the OpenAPI document."""

    target_class = "accounts.authentication.JWTAuthentication"
