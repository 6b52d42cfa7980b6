"""What never leaves the process in clear: card numbers, tokens, secrets, by key name and by their look.

Used by the log formatter (``config.logging``) and the error reporter (``config.sentry``), so both redact alike.
"""

from __future__ import annotations

import re
from typing import Any

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


def _scrub_item(key: object, item: Any, wrapped: Any) -> Any:
    if key in _STRUCTURAL_KEYS:
        return item
    return FILTERED if _key_is_sensitive(key) else scrub(item, wrapped=wrapped)


def scrub(value: Any, *, wrapped: Any = None) -> Any:
    """A copy of ``value`` (a JSON-like tree) with sensitive keys and values replaced.

    ``wrapped``: a class holding ``.value`` and ``.metadata`` to look inside (sentry-sdk's AnnotatedValue).
    """
    if isinstance(value, dict):
        return {
            key: item
            if key in _STRUCTURAL_KEYS
            else FILTERED
            if _key_is_sensitive(key)
            else scrub(item, wrapped=wrapped)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Headers and cookies sometimes come as [name, value] pairs.
        if len(value) == 2 and _key_is_sensitive(value[0]):
            return [value[0], FILTERED]
        return [scrub(item, wrapped=wrapped) for item in value]
    if wrapped is not None and isinstance(value, wrapped):
        return wrapped(scrub(value.value, wrapped=wrapped), value.metadata)
    if isinstance(value, str):
        return scrub_text(value)
    return value
