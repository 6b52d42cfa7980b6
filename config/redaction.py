"""Secrets out of stored answers: the idempotency table keeps a body with its secret values replaced by a marker.

A replay answers a marked value as ``null`` and names the field, so a secret is never kept nor shown twice.
"""

from __future__ import annotations

import json
from typing import Any

# Fields of a JSON answer whose values never rest in the table.
SECRET_FIELDS = frozenset({"access", "refresh", "token", "secret", "client_secret", "password", "otp"})
REDACTED = "__idempotency_redacted__"


def _walk_redact(value: Any, found: set[str], replace: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name in SECRET_FIELDS and isinstance(item, str) and item:
                found.add(name)
                out[name] = replace
            else:
                out[name] = _walk_redact(item, found, replace)
        return out
    if isinstance(value, list):
        return [_walk_redact(item, found, replace) for item in value]
    return value


def redacted_body(content: bytes) -> bytes:
    """The body as it may rest in the table: every secret field's value replaced by a marker."""
    try:
        data = json.loads(content)
    except ValueError:
        return content
    found: set[str] = set()
    redacted = _walk_redact(data, found, REDACTED)
    return json.dumps(redacted, separators=(",", ":")).encode() if found else content


def _unmark(value: Any, found: set[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if item == REDACTED:
                found.add(name)
                out[name] = None
            else:
                out[name] = _unmark(item, found)
        return out
    if isinstance(value, list):
        return [_unmark(item, found) for item in value]
    return value


def redaction_lifted(body: bytes) -> tuple[bytes, set[str]]:
    """A stored body as it is replayed: markers become ``null``; also the names of the fields redacted."""
    found: set[str] = set()
    if REDACTED.encode() not in body:
        return body, found
    return json.dumps(_unmark(json.loads(body), found), separators=(",", ":")).encode(), found
