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
_current_request_new: ContextVar[bool] = ContextVar("idempotency_request_new", default=False)


def current_request_key() -> str | None:
    """The running request's key (HMAC of scope and ``Idempotency-Key``, 64 hex), None without a header."""
    return _current_request_key.get()


def current_request_is_new() -> bool:
    """True when the running request's claim was inserted just now: no earlier attempt with its key is known to
    the idempotency table, so a service may skip looking for what one made (and must still cope with finding
    it, through the unique ``request_key`` of what it creates: a claim can be lost, or a key come back after
    it expired)."""
    return _current_request_new.get()


def request_key_for(scope: str, key: str) -> str:
    """The stable name of (scope, key): keyed, so the client's key never reaches Stripe as it is."""
    return salted_hmac(_REQUEST_KEY_SALT, f"{scope}\x00{key}", algorithm="sha256").hexdigest()


@contextmanager
def request_key_set(value: str | None, *, new: bool = False) -> Iterator[None]:
    """Sets ``current_request_key()`` (and ``current_request_is_new()``) inside the block (the middleware, and
    services' tests)."""
    token = _current_request_key.set(value)
    new_token = _current_request_new.set(new)
    try:
        yield
    finally:
        _current_request_new.reset(new_token)
        _current_request_key.reset(token)
