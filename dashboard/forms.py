"""Forms of the merchant dashboard. Amounts are typed in major units and kept as integer minor units."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from catalog.serializers import MAX_STOCK
from config.money import MoneyFormField

# The shared money field (config.money): absurd exponents are a form error there, not a 500.
MoneyField = MoneyFormField


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


# The edit form was posted without the stock it showed (a hand-made post).
UNSHOWN: Any = object()


class ProductEditForm(ProductForm):
    """The edit form also posts the stock it showed, so units sold meanwhile are never put back on sale."""

    stock_based_on = forms.CharField(widget=forms.HiddenInput, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "stock_based_on" not in self.data:  # a hand-made post: its stock is a plain set under the row lock
            data["stock_based_on"] = UNSHOWN
            return data
        shown = (data.get("stock_based_on") or "").strip()
        if shown != "unlimited" and not shown.isdigit():
            raise ValidationError("This form is out of date: reload the page.", code="stale")
        data["stock_based_on"] = None if shown == "unlimited" else int(shown)
        return data

    def changes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fields the merchant changed, and the guard of a stock change (``expected_stock``)."""
        data = self.cleaned_data
        changes = {f: data[f] for f in self.changed_data if f in data and f not in ("stock", "stock_based_on")}
        shown = data.get("stock_based_on", UNSHOWN)
        if shown is UNSHOWN:
            return ({**changes, "stock": data["stock"]} if "stock" in self.changed_data else changes), {}
        if data["stock"] != shown:
            return {**changes, "stock": data["stock"]}, {"expected_stock": shown}
        return changes, {}


def stock_shown(stock: int | None) -> str:
    return "unlimited" if stock is None else str(stock)


class RefundForm(forms.Form):
    amount = MoneyField(required=False, help_text="empty: everything not refunded yet")
    reason = forms.CharField(max_length=255, required=False)


class WithdrawalForm(forms.Form):
    amount = MoneyField()


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https")
