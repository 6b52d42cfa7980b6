"""Small helpers shared by the cross-cutting API tests."""

from __future__ import annotations

from django.conf import settings

from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Account


def fund(user, amount: int) -> str:
    """Credits ``user``'s wallet through the ledger; returns the wallet id."""
    account_id = wallet_id_for(user_id=user.pk, role=user.role, currency=settings.PLATFORM_CURRENCY)
    wallet_adjust(account_id=account_id, amount=amount, reason="test funding", actor=None)
    return account_id


def balance(account_id: str) -> int:
    return Account.objects.get(pk=account_id).balance
