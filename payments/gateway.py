"""The one door to Stripe: SDK configuration, bounded calls, error translation.

Every call has an explicit timeout (``STRIPE_TIMEOUT_SECONDS``) and at most
``STRIPE_MAX_NETWORK_RETRIES`` network retries, sends an idempotency key when
it creates or changes something, and must never run inside a database
transaction (``call`` refuses): lock, commit, call out, lock again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import stripe
from django.conf import settings
from django.db import connection

from payments.errors import translate_stripe_error

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StripeCallInTransaction(RuntimeError):
    """A programming error: a Stripe call would hold the caller's row locks while it waits."""


def in_transaction() -> bool:
    """True inside a transaction of ours (a test case's wrapping transaction does not count)."""
    if not connection.in_atomic_block:
        return False
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def configure() -> None:
    """Points the SDK (and so dj-stripe) at the configured server with bounded timeouts."""
    stripe.api_key = settings.STRIPE_SECRET_KEY
    if settings.STRIPE_API_BASE:
        stripe.api_base = settings.STRIPE_API_BASE
    stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES
    stripe.enable_telemetry = False
    timeout = settings.STRIPE_TIMEOUT_SECONDS
    stripe.default_http_client = stripe.RequestsClient(timeout=(min(timeout, 5.0), timeout))


def using_local_fake() -> bool:
    return bool(settings.STRIPE_API_BASE) and not settings.STRIPE_API_BASE.startswith("https://api.stripe.com")


def api_key() -> str:
    return settings.STRIPE_SECRET_KEY


def call(fn: Callable[..., T], *args: Any, param: str | None = None, **kwargs: Any) -> T:
    """Calls one Stripe SDK function; Stripe's errors come out as the contract's DomainErrors."""
    if in_transaction():
        raise StripeCallInTransaction(f"{getattr(fn, '__qualname__', fn)} called inside a transaction")
    kwargs.setdefault("api_key", api_key())
    try:
        return fn(*args, **kwargs)
    except stripe.StripeError as exc:
        raise translate_stripe_error(exc, param=param) from exc


def raw_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like ``call`` but lets ``stripe.StripeError`` through, for callers that inspect it."""
    if in_transaction():
        raise StripeCallInTransaction(f"{getattr(fn, '__qualname__', fn)} called inside a transaction")
    kwargs.setdefault("api_key", api_key())
    return fn(*args, **kwargs)
