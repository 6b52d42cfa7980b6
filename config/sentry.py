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

FILTERED = "[Filtered]"

# Exact key names (lower case, "-" read as "_") whose value is always dropped.
SENSITIVE_KEYS = frozenset(
    {
        "card",
        "number",
        "cvc",
        "cvv",
        "access",
        "refresh",
        "otp",
        "client_secret",
        "pan",
        "http_authorization",
        "http_cookie",
    }
)
# A key containing one of these is dropped too (old_password, STRIPE_SECRET_KEY,
# access_token, set_cookie, stripe_signature, webhook_signature, ...).
SENSITIVE_KEY_PARTS = ("password", "secret", "token", "authorization", "cookie", "signature", "card_number", "cvc")
SENSITIVE_KEY_PREFIXES = ("exp_",)

# The event's own identifiers and times: never secrets, and Sentry needs them intact.
_STRUCTURAL_KEYS = frozenset(
    {"event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp", "release"}
)

# Values that are secrets whatever key holds them.
_VALUE_PATTERNS = (
    # PAN-like: 13-19 digits, optionally grouped by single spaces or dashes.
    re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])"),
    # JWTs (header.payload.signature, all base64url; the header starts with {" = eyJ).
    re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"),
    # Stripe and webhook secrets, and client secrets (pi_..._secret_..., seti_..._secret_...).
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+"),
    re.compile(r"\b[a-z]+_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"),
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\",]+")
# key=value pairs inside strings: query strings, otpauth URIs, reprs of settings.
_ASSIGNMENT = re.compile(
    r"(?i)\b([a-z_]*(?:password|secret|token|access|refresh|otp|cvc|authorization)[a-z_]*)(['\"]?\s*[=:]\s*['\"]?)[^\s&'\",;}]+"
)
# The password in a URL such as postgres://user:password@host/db.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]*:)[^@\s/]+@")

# Calls whose whole request body is dropped: they carry passwords, tokens or card data.
_BODY_FREE_PATHS = re.compile(r"/api/v1/(?:auth/|me/password|payment-methods)")


def _key_is_sensitive(key: object) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return (
        name in SENSITIVE_KEYS
        or any(part in name for part in SENSITIVE_KEY_PARTS)
        or name.startswith(SENSITIVE_KEY_PREFIXES)
    )


def scrub_text(text: str) -> str:
    """The text with every card number, token and secret in it replaced by ``[Filtered]``."""
    text = _URL_PASSWORD.sub(rf"\1{FILTERED}@", text)
    text = _BEARER.sub(rf"\1 {FILTERED}", text)
    text = _ASSIGNMENT.sub(rf"\1\2{FILTERED}", text)
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(FILTERED, text)
    return text


def scrub(value: Any) -> Any:
    """A copy of ``value`` (any JSON-like tree of an event) with sensitive keys and values replaced."""
    if isinstance(value, dict):
        return {
            key: item if key in _STRUCTURAL_KEYS else FILTERED if _key_is_sensitive(key) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Headers and cookies sometimes come as [name, value] pairs.
        if len(value) == 2 and _key_is_sensitive(value[0]):
            return [value[0], FILTERED]
        return [scrub(item) for item in value]
    if isinstance(value, AnnotatedValue):
        return AnnotatedValue(scrub(value.value), value.metadata)
    if isinstance(value, str):
        return scrub_text(value)
    return value


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
    scrubbed: Event = scrub(event)
    return scrubbed


def before_send_transaction(event: Event, hint: Hint) -> Event | None:
    """Scrubs a performance transaction: it carries the request and span data too."""
    return before_send(event, hint)


def before_breadcrumb(crumb: dict[str, Any], hint: Hint) -> dict[str, Any] | None:
    """Scrubs a breadcrumb when it is recorded (log lines, SQL, outbound HTTP)."""
    scrubbed: dict[str, Any] = scrub(crumb)
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
