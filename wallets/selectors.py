"""Every read of wallets, deposits, withdrawals and postings that is more than a get by pk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet

from config.errors import NotFound
from wallets.models import WITHDRAWAL_OPEN_STATUSES, Account, Deposit, Posting, Withdrawal

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True, slots=True)
class WalletSummary:
    balance: int  # spendable now
    pending: int  # held by withdrawals in flight and open disputes
    currency: str


def wallet_summary(user: User, currency: str | None = None) -> WalletSummary:
    """The user's wallet in ``currency`` (platform currency by default); zeros if it was never opened."""
    currency = currency or settings.PLATFORM_CURRENCY
    row = Account.objects.filter(owner_id=user.pk, currency=currency).values_list("balance", "held").first()
    balance, held = row or (0, 0)
    return WalletSummary(balance=balance, pending=held, currency=currency)


def wallet_postings(user: User) -> QuerySet[Posting]:
    """The postings of the user's wallets with their entries, for newest-first cursor pages."""
    wallet_ids = list(Account.objects.filter(owner_id=user.pk).values_list("pk", flat=True))
    return Posting.objects.filter(account_id__in=wallet_ids).select_related("entry")


def deposit_get(*, user: User, deposit_id: str) -> Deposit:
    """One of the user's deposits; anyone else's is ``NotFound``."""
    deposit = Deposit.objects.filter(pk=deposit_id, user_id=user.pk).first()
    if deposit is None:
        raise NotFound(f"No deposit {deposit_id}.")
    return deposit


def withdrawals_of(user: User) -> QuerySet[Withdrawal]:
    return Withdrawal.objects.filter(user_id=user.pk)


def withdrawal_get(*, user: User, withdrawal_id: str) -> Withdrawal:
    """One of the user's withdrawals; anyone else's is ``NotFound``."""
    withdrawal = withdrawals_of(user).filter(pk=withdrawal_id).first()
    if withdrawal is None:
        raise NotFound(f"No withdrawal {withdrawal_id}.")
    return withdrawal


def withdrawals_pending(status: str | None = None) -> QuerySet[Withdrawal]:
    """What staff still have to decide (``pending`` and ``awaiting_second_approval``, or one of them), oldest first."""
    statuses = [status] if status else list(WITHDRAWAL_OPEN_STATUSES)
    return Withdrawal.objects.filter(status__in=statuses).select_related("user").order_by("id")


def withdrawals_recent_of(user: User, limit: int = 100) -> list[Withdrawal]:
    """The user's ``limit`` newest withdrawals."""
    return list(withdrawals_of(user).order_by("-id")[:limit])
