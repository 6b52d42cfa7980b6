"""Sign-in throttling for the admin and the dashboard (django-axes), per user and client address.

The API's ``auth/token`` checks passwords itself and is throttled by DRF's throttles instead.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest
from rest_framework.request import Request


class SignInThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check for the sign-in forms; a call without a request, or from the API
    (``auth/token``, throttled by DRF's throttles and answering the contract's envelope), is not its business."""

    def authenticate(
        self,
        request: HttpRequest | Request | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None or isinstance(request, Request):
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def sign_in_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The email a sign-in names, as stored (lowercased): ``Foo@x`` and ``foo@x`` count against one lockout."""
    value = (credentials or {}).get("username") or request.POST.get("username") or ""
    return str(value).strip().lower()[:254]
