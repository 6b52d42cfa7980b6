"""Reads of goods: a buyer's library (newest first)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from orders.models import Goods


def goods_of_buyer(*, buyer: User) -> QuerySet[Goods]:
    """Every goods item of the buyer's paid orders (refunded ones show as revoked), newest first."""
    return Goods.objects.filter(buyer=buyer).order_by("-id")
