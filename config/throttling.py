"""DRF throttles on the shared cache, scaled by ``THROTTLE_SCALE`` (0 = off)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def client_address(request: HttpRequest) -> str:
    """The client's address exactly as the API's throttles see it (``NUM_PROXIES`` behind a proxy).

    django-axes (the admin's and the dashboard's sign-in throttle) and the audit trail use it too.
    """
    return str(BaseThrottle().get_ident(request) or "")  # type: ignore[arg-type]


class ScaledRateThrottle(SimpleRateThrottle):
    """A throttle whose rate is the configured one times ``THROTTLE_SCALE``."""

    def get_rate(self) -> str | None:
        scale = settings.THROTTLE_SCALE
        if scale <= 0:
            return None
        rate = super().get_rate()
        if rate is None:
            return None
        count, period = rate.split("/")
        return f"{max(1, int(int(count) * scale))}/{period}"

    def ident_or_user(self, request: Request) -> str:
        user = request.user
        if user and user.is_authenticated:
            return f"user:{user.pk}"
        return f"ip:{self.get_ident(request)}"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.ident_or_user(request)}


class AuthIpThrottle(ScaledRateThrottle):
    scope = "auth_ip"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthEmailThrottle(ScaledRateThrottle):
    """Per target account, so a distributed guesser is slowed down as well."""

    scope = "auth_email"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        data = request.data if isinstance(request.data, dict) else {}
        email = data.get("email")
        if not isinstance(email, str) or not email:
            return None
        return self.cache_format % {"scope": self.scope, "ident": email.strip().lower()[:254]}


class TokenRefreshThrottle(ScaledRateThrottle):
    scope = "token_refresh"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PaymentsThrottle(ScaledRateThrottle):
    scope = "payments"


class RefundsThrottle(ScaledRateThrottle):
    scope = "refunds"


class WithdrawalsThrottle(ScaledRateThrottle):
    scope = "withdrawals"


class UserThrottle(ScaledRateThrottle):
    scope = "user"


class WriteThrottledMixin:
    """Throttles only a view's writes (POST, DELETE): reading one's own data stays free.

    A view names its throttles in ``write_throttle_classes``.
    """

    write_throttle_classes: tuple[type[ScaledRateThrottle], ...] = ()

    def get_throttles(self) -> list[Any]:
        if self.request.method in ("POST", "DELETE"):  # type: ignore[attr-defined]
            return [throttle() for throttle in self.write_throttle_classes]
        return []
