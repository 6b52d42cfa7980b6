"""``{{ amount|money:currency }}`` renders minor units the way people read them."""

from __future__ import annotations

from django import template

from config.money import Money

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    if amount is None:
        return "—"
    return str(Money(int(amount), currency))
