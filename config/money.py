"""Money: an integer of minor units with its lowercase ISO-4217 currency beside it.

The one value type every app uses. No floats, no Decimal in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Currencies whose smallest unit is the major unit (as Stripe lists them).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
SUPPORTED = frozenset({"usd", "eur", "gbp", "cad", "aud", "chf", "sek", "nok", "dkk", "pln"}) | ZERO_DECIMAL

# A ceiling far above any real payment and far below 2**63, so sums of many
# amounts can never overflow a BIGINT.
MAX_AMOUNT = 100_000_000_000


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise TypeError("Money.amount must be an int of minor units")
        if self.currency != self.currency.lower() or len(self.currency) != 3:
            raise ValueError(f"currency must be lowercase ISO-4217, got {self.currency!r}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def as_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}

    def __str__(self) -> str:
        if self.currency in ZERO_DECIMAL:
            return f"{self.amount} {self.currency.upper()}"
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 100)
        return f"{sign}{major:,}.{minor:02d} {self.currency.upper()}"


def basis_points(amount: int, bps: int) -> int:
    """``amount * bps / 10000`` rounded half-up, in integers only."""
    return (amount * bps + 5000) // 10000


def proportional(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded half-up, in integers only."""
    if whole <= 0:
        raise ValueError("whole must be positive")
    return (total * part * 2 + whole) // (whole * 2)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT, "format": "int64"})
class AmountField(serializers.Field):
    """A positive integer of minor units; floats, strings, booleans, zero and negatives are refused."""

    default_error_messages = {
        "invalid": "Must be a positive integer of the currency's minor unit (e.g. 1050 for 10.50).",
        "max_value": "Must be at most {max_value}.",
        "min_value": "Must be at least {min_value}.",
    }

    def __init__(self, *, min_value: int = 1, max_value: int = MAX_AMOUNT, **kwargs: Any) -> None:
        self.min_value = min_value
        self.max_value = max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        if data < self.min_value:
            self.fail("min_value", min_value=self.min_value)
        if data > self.max_value:
            self.fail("max_value", max_value=self.max_value)
        return data

    def to_representation(self, value: int) -> int:
        return int(value)


class CurrencyField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data).lower()
        if value not in SUPPORTED:
            raise serializers.ValidationError(f"Unsupported currency {value!r}.")
        return value
