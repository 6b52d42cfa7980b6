"""The audit trail's context: who, from which address and request, and why, attached to every tracked change.

django-pghistory's triggers record each change (raw SQL and bulk updates included); this names its context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pghistory
from django.http import HttpRequest
from pghistory.middleware import HistoryMiddleware

from config.request_context import current_request_id
from config.throttling import client_address


class AuditContextMiddleware(HistoryMiddleware):
    """pghistory's middleware (user and path of every write request), plus the client address and request id."""

    def get_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().get_context(request)
        context["address"] = client_address(request)
        context["request_id"] = current_request_id() or ""
        return context


@contextmanager
def audit_reason(reason: str, **more: Any) -> Iterator[None]:
    """Every tracked change inside carries ``reason`` (and ``more``) in its context, beside the request's."""
    with pghistory.context(reason=reason, **more):
        yield
