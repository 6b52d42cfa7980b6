"""Error reporting with sentry-sdk, on only when ``SENTRY_DSN`` is set.

Nothing that the contract keeps out of logs may reach Sentry either: card data,
tokens, secrets, the Authorization and Cookie headers, and the bodies of the auth
and payment-method calls. sentry-sdk's own ``EventScrubber`` (recursive, with our
keys added) drops values by key name; ``scrub`` below goes over the whole event
once more, by key substring and by what a value looks like (a card number, a JWT,
a Stripe key), because an exception message or a local variable has no key.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import environ
import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport
from sentry_sdk.types import Event, Hint
from sentry_sdk.utils import AnnotatedValue

from config.redact import FILTERED, SENSITIVE_KEYS, scrub

# Calls whose whole request body is dropped: they carry passwords, tokens or card data.
_BODY_FREE_PATHS = re.compile(r"/api/v1/(?:auth/|me/password|payment-methods)")


_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _drop_request_secrets(event: Event) -> None:
    """Removes the credential headers and cookies, and the whole body of a private call."""
    request = event.get("request")
    if not isinstance(request, dict):
        return
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {name: value for name, value in headers.items() if name.lower() not in _SECRET_HEADERS}
    request.pop("cookies", None)
    if _BODY_FREE_PATHS.search(str(request.get("url", ""))) and "data" in request:
        request["data"] = FILTERED


def before_send(event: Event, hint: Hint) -> Event | None:
    """Scrubs an error event before it leaves the process."""
    _drop_request_secrets(event)
    scrubbed: Event = scrub(event, wrapped=AnnotatedValue)
    return scrubbed


def before_send_transaction(event: Event, hint: Hint) -> Event | None:
    """Scrubs a performance transaction: it carries the request and span data too."""
    return before_send(event, hint)


def before_breadcrumb(crumb: dict[str, Any], hint: Hint) -> dict[str, Any] | None:
    """Scrubs a breadcrumb when it is recorded (log lines, SQL, outbound HTTP)."""
    scrubbed: dict[str, Any] = scrub(crumb, wrapped=AnnotatedValue)
    return scrubbed


def _event_scrubber() -> EventScrubber:
    keys = [*DEFAULT_DENYLIST, *SENSITIVE_KEYS, "exp_month", "exp_year", "set_cookie"]
    return EventScrubber(denylist=sorted(set(keys)), recursive=True, send_default_pii=False)


def sentry_init(env: environ.Env, *, transport: type[Transport] | Callable[..., Any] | None = None) -> bool:
    """Starts sentry-sdk when ``SENTRY_DSN`` is set; answers whether it did.

    ``transport`` replaces the network transport (the tests capture envelopes in memory).
    """
    dsn = env.str("SENTRY_DSN", default="")
    if not dsn:
        return False
    release = env.str("SENTRY_RELEASE", default="") or env.str("GIT_SHA", default="") or None
    with warnings.catch_warnings():
        # sentry-sdk 2.x deprecates send_default_pii in favour of data_collection, which
        # turns the EventScrubber off; the explicit False is the promise we keep.
        warnings.filterwarnings("ignore", message=".*send_default_pii.*", category=DeprecationWarning)
        sentry_sdk.init(
            dsn=dsn,
            release=release,
            environment=env.str("SENTRY_ENVIRONMENT", default="production"),
            send_default_pii=False,
            include_local_variables=True,
            max_request_body_size="medium",
            traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
            event_scrubber=_event_scrubber(),
            before_send=before_send,
            before_send_transaction=before_send_transaction,
            before_breadcrumb=before_breadcrumb,
            integrations=[
                DjangoIntegration(),
                CeleryIntegration(),
                LoggingIntegration(),
            ],
            transport=transport,
        )
    return True
