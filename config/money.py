"""Money: an integer of minor units with its lowercase ISO-4217 currency beside it.

The one value type every app uses. No floats, no Decimal in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
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


def minor_unit_digits(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def to_major(amount: int, currency: str) -> str:
    """1050 usd → ``"10.50"`` (the text a form shows)."""
    digits = minor_unit_digits(currency)
    if not digits:
        return str(amount)
    major, minor = divmod(amount, 10**digits)
    return f"{major}.{minor:0{digits}d}"


class MoneyFormField(forms.Field):
    """A form's amount typed in major units (``10.50``) → integer minor units (1050), Decimal arithmetic only.

    Every form with money uses it (the dashboard's and the admin's): text that is not a plain finite number,
    more decimals than the currency has, or a magnitude beyond ``MAX_AMOUNT`` (``1e999999999`` included,
    checked on the exponent before any arithmetic) is a form error, never an exception.
    """

    INVALID = "Enter an amount such as 10.50."

    def __init__(self, *, max_amount: int | None = None, currency: str | None = None, **kwargs: Any) -> None:
        self.currency = currency or settings.PLATFORM_CURRENCY
        self.max_amount = max_amount
        kwargs.setdefault("help_text", f"in {self.currency.upper()}, e.g. 10.50")
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "maxlength": 20}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return to_major(value, self.currency)
        return value

    def to_python(self, value: Any) -> int | None:
        text = str(value if value is not None else "").strip().replace(",", "")
        if not text:
            return None
        if len(text) > 20:
            raise ValidationError(self.INVALID, code="invalid")
        digits = minor_unit_digits(self.currency)
        try:
            number = Decimal(text)
        except InvalidOperation as exc:
            raise ValidationError(self.INVALID, code="invalid") from exc
        if not number.is_finite():
            raise ValidationError(self.INVALID, code="invalid")
        ceiling = self.max_amount if self.max_amount is not None else MAX_AMOUNT
        # adjusted() is the exponent of the leading digit: no arithmetic on 1e999999999 ever happens.
        if number and number.adjusted() + digits > len(str(MAX_AMOUNT)):
            raise ValidationError(f"Must be at most {to_major(ceiling, self.currency)}.", code="max_value")
        with localcontext() as context:
            context.prec = 50
            minor = number.scaleb(digits)
            if minor != minor.to_integral_value():
                raise ValidationError(f"Use at most {digits} decimal places.", code="invalid")
            amount = int(minor)
        if amount <= 0:
            raise ValidationError("Must be more than zero.", code="min_value")
        if amount > ceiling:
            raise ValidationError(f"Must be at most {to_major(ceiling, self.currency)}.", code="max_value")
        return amount
