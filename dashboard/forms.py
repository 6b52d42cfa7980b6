"""Forms of the merchant dashboard. Amounts are typed in major units and kept as integer minor units."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from catalog.serializers import MAX_STOCK
from config.money import ZERO_DECIMAL


def minor_unit_digits(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def to_major(amount: int, currency: str) -> str:
    digits = minor_unit_digits(currency)
    if not digits:
        return str(amount)
    major, minor = divmod(amount, 10**digits)
    return f"{major}.{minor:0{digits}d}"


class MoneyField(forms.Field):
    """``10.50`` → 1050 (in the platform currency's minor unit), with Decimal arithmetic only."""

    def __init__(self, *, max_amount: int | None = None, **kwargs: Any) -> None:
        self.currency = settings.PLATFORM_CURRENCY
        self.max_amount = max_amount
        kwargs.setdefault("help_text", f"in {self.currency.upper()}, e.g. 10.50")
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "maxlength": 20}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return to_major(value, self.currency)
        return value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = str(value if value is not None else "").strip().replace(",", "")
        if not text:
            return None
        if len(text) > 20:
            raise ValidationError("Enter an amount such as 10.50.", code="invalid")
        digits = minor_unit_digits(self.currency)
        try:
            number = Decimal(text)
        except InvalidOperation as exc:
            raise ValidationError("Enter an amount such as 10.50.", code="invalid") from exc
        if not number.is_finite():
            raise ValidationError("Enter an amount such as 10.50.", code="invalid")
        minor = number.scaleb(digits)
        if minor != minor.to_integral_value():
            raise ValidationError(f"Use at most {digits} decimal places.", code="invalid")
        amount = int(minor)
        if amount <= 0:
            raise ValidationError("Must be more than zero.", code="min_value")
        if self.max_amount is not None and amount > self.max_amount:
            raise ValidationError(f"Must be at most {to_major(self.max_amount, self.currency)}.", code="max_value")
        return amount


class MerchantLoginForm(AuthenticationForm):
    """Only merchants may use the dashboard; other accounts get the same kind of refusal as a bad password."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "not_merchant": "This dashboard is for merchant accounts only.",
    }

    def clean_username(self) -> str:
        return (self.cleaned_data.get("username") or "").strip().lower()

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_merchant:
            raise ValidationError(self.error_messages["not_merchant"], code="not_merchant")


class ProductForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    price = MoneyField()
    stock = forms.IntegerField(min_value=0, max_value=MAX_STOCK, required=False, help_text="empty: unlimited")
    fulfillment = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="what the buyer receives once paid (licence key, download link…)",
        strip=False,
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active (listed in the catalog)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        price = self.fields["price"]
        assert isinstance(price, MoneyField)
        price.max_amount = settings.MAXIMUM_PRODUCT_PRICE

    def clean_fulfillment(self) -> str:
        value = self.cleaned_data["fulfillment"]
        if not value.strip():
            raise ValidationError("This field is required.", code="required")
        return value


class RefundForm(forms.Form):
    amount = MoneyField(required=False, help_text="empty: everything not refunded yet")
    reason = forms.CharField(max_length=255, required=False)


class WithdrawalForm(forms.Form):
    amount = MoneyField()


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https")
