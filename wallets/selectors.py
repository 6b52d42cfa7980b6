"""Every read of wallets, deposits, withdrawals and postings that is more than a get by pk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q, QuerySet, Sum

from config.errors import NotFound
from payments.models import Dispute
from wallets.availability import withdrawable_amount
from wallets.models import (
    OWNED_KINDS,
    WALLET_KINDS,
    WITHDRAWAL_OPEN_STATUSES,
    Account,
    AccountKind,
    Deposit,
    Posting,
    Withdrawal,
)

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True, slots=True)
class WalletSummary:
    balance: int  # spendable now
    withdrawable: int  # the part of the balance that can be withdrawn now (card top-ups cool off first)
    pending: int  # held by withdrawals in flight and open disputes
    incoming: int  # a merchant's card-sale income not yet available
    currency: str


def wallet_summary(user: User, currency: str | None = None, *, at: datetime | None = None) -> WalletSummary:
    """The user's wallet in ``currency`` (platform currency by default) now, or as it was at ``at``
    (balances from the postings; ``pending`` from the withdrawals and disputes open then); zeros if never opened."""
    currency = currency or settings.PLATFORM_CURRENCY
    accounts = {
        kind: (pk, balance, held)
        for pk, kind, balance, held in Account.objects.filter(
            owner_id=user.pk, currency=currency, kind__in=list(OWNED_KINDS)
        ).values_list("pk", "kind", "balance", "held")
    }
    wallet = accounts.get(AccountKind.MERCHANT) or accounts.get(AccountKind.CUSTOMER)
    incoming = accounts.get(AccountKind.INCOMING)
    if wallet is None:
        return WalletSummary(balance=0, withdrawable=0, pending=0, incoming=0, currency=currency)
    wallet_id, balance, held = wallet
    incoming_balance = incoming[1] if incoming else 0
    if at is not None:
        balance = _balance_at(wallet_id, at)
        incoming_balance = _balance_at(incoming[0], at) if incoming else 0
        held = _held_at(wallet_id, user, currency, at)
    return WalletSummary(
        balance=balance,
        withdrawable=withdrawable_amount(balance=balance, account_id=wallet_id, at=at),
        pending=held,
        incoming=incoming_balance,
        currency=currency,
    )


def _balance_at(account_id: str, at: datetime) -> int:
    """The account's balance right after its last posting at or before ``at`` (0 before the first)."""
    last = (
        Posting.objects.filter(account_id=account_id, created_at__lte=at)
        .order_by("-created_at", "-id")
        .values_list("balance_after", flat=True)
        .first()
    )
    return last or 0


def _held_at(wallet_id: str, user: User, currency: str, at: datetime) -> int:
    """What withdrawals and disputes held from the wallet at ``at``: those opened by then and not yet decided."""
    undecided = Q(created_at__lte=at) & (Q(decided_at__isnull=True) | Q(decided_at__gt=at))
    withdrawals = Withdrawal.objects.filter(undecided, account_id=wallet_id).aggregate(total=Sum("amount"))["total"]
    open_then = Q(created_at__lte=at) & (Q(resolved_at__isnull=True) | Q(resolved_at__gt=at))
    disputes = (
        Dispute.objects.filter(open_then, currency=currency, held_amount__gt=0)
        .filter(Q(payment__order__merchant_id=user.pk) | Q(payment__order__isnull=True, payment__user_id=user.pk))
        .aggregate(total=Sum("held_amount"))["total"]
    )
    return int(withdrawals or 0) + int(disputes or 0)


def wallet_postings(user: User) -> QuerySet[Posting]:
    """The postings of the user's wallet (not a merchant's incoming account) with their entries,
    for newest-first cursor pages."""
    wallet_ids = list(
        Account.objects.filter(owner_id=user.pk, kind__in=list(WALLET_KINDS)).values_list("pk", flat=True)
    )
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
