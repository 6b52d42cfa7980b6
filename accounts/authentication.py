"""JWT authentication that also tags the request's log lines with the user id."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication

from config.request_context import user_id_var


class JWTAuthentication(_JWTAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is not None:
            user_id_var.set(str(result[0].pk))
        return result


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Documents our subclass as the bearer-JWT security scheme of the OpenAPI document."""

    target_class = "accounts.authentication.JWTAuthentication"
