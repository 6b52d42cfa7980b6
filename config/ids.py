"""Opaque, prefixed, time-sortable public ids (``ord_01J…``).

The body is a ULID: 48 bits of milliseconds then 80 random bits, in Crockford
base32, so ids sort by creation time (good B-tree locality, stable cursor
ordering) while revealing nothing sequential. Within one process ids from the
same millisecond are kept strictly increasing.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Any

from django.db import models

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0

ID_LENGTH = 26
PREFIXES = frozenset(
    {"usr", "acc", "ent", "txn", "dep", "wdr", "prd", "ord", "pay", "ref", "evt", "whk", "dsp", "dlv", "rcn", "gds"}
)


# RFC 4648 base32 (done in C by base64) maps 5-bit groups to "A…Z2…7"; this turns them into Crockford's.
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def _encode(value: int, length: int) -> str:
    """``value`` as ``length`` Crockford base32 digits (5 bits each, most significant first)."""
    width = (length * 5 + 39) // 40 * 5  # whole 40-bit groups, so base32 needs no padding
    digits = base64.b32encode(value.to_bytes(width, "big")).translate(_FROM_RFC4648)
    return digits[len(digits) - length :].decode()


def ulid() -> str:
    global _last_ms, _last_rand
    now = int(time.time() * 1000)
    with _lock:
        if now <= _last_ms:
            now = _last_ms
            _last_rand = (_last_rand + 1) & ((1 << 80) - 1)
        else:
            _last_ms = now
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        rand = _last_rand
    return _encode(now, 10) + _encode(rand, 16)


def new_id(prefix: str) -> str:
    assert prefix in PREFIXES, prefix
    return f"{prefix}_{ulid()}"


def id_at(prefix: str, epoch_ms: int) -> str:
    """The smallest id of ``prefix`` minted at ``epoch_ms``: a range boundary.

    A time before 1970 or past the 48-bit range gives the first or last possible id time.
    """
    epoch_ms = min(max(epoch_ms, 0), (1 << 48) - 1)
    return f"{prefix}_{_encode(epoch_ms, 10)}{'0' * 16}"


def id_time_ms(public_id: str) -> int:
    body = public_id.split("_", 1)[1]
    value = 0
    for char in body[:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value


class IdFactory:
    """A ``default=`` callable for id fields that migrations can serialize."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return new_id(self.prefix)

    def deconstruct(self) -> tuple[str, tuple[str], dict[str, str]]:
        return ("config.ids.IdFactory", (self.prefix,), {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdFactory) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)


class PublicIdField(models.CharField):
    """Primary key holding a prefixed public id, minted on creation."""

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        self.prefix = prefix
        kwargs.setdefault("primary_key", True)
        kwargs["max_length"] = len(prefix) + 1 + ID_LENGTH
        kwargs["default"] = IdFactory(prefix)
        kwargs["editable"] = False
        super().__init__(**kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        for key in ("max_length", "default", "editable"):
            kwargs.pop(key, None)
        kwargs["prefix"] = self.prefix
        return name, path, args, kwargs
