"""The running API request's idempotency name, for services that must resume rather than repeat its work.

Set by ``config.idempotency`` around the view; read by payments (a payment remembers the request that made it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.utils.crypto import salted_hmac

_REQUEST_KEY_SALT = "config.idempotency.request-key"

_current_request_key: ContextVar[str | None] = ContextVar("idempotency_request_key", default=None)


def current_request_key() -> str | None:
    """The running request's key (HMAC of scope and ``Idempotency-Key``, 64 hex), None without a header."""
    return _current_request_key.get()


def request_key_for(scope: str, key: str) -> str:
    """The stable name of (scope, key): keyed, so the client's key never reaches Stripe as it is."""
    return salted_hmac(_REQUEST_KEY_SALT, f"{scope}\x00{key}", algorithm="sha256").hexdigest()


@contextmanager
def request_key_set(value: str | None) -> Iterator[None]:
    """Sets ``current_request_key()`` inside the block (the middleware, and services' tests)."""
    token = _current_request_key.set(value)
    try:
        yield
    finally:
        _current_request_key.reset(token)
