"""Reads behind a wallet's history and monthly statement: ledger lines with running balances.

The closing balance is the opening balance plus every line, the same sum ``ledger_verify`` checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet, Sum
from django.utils import timezone

from wallets.models import WALLET_KINDS, Account, Posting

if TYPE_CHECKING:
    from accounts.models import User

STATEMENT_HEADER = ("date", "transaction", "kind", "reference", "amount", "balance", "currency")


def wallet_account(user: User, currency: str | None = None) -> Account | None:
    """The user's wallet account in ``currency`` (the platform's by default); None if never opened."""
    # Only the wallet: a merchant also owns an "incoming" account for card income not yet available.
    wallets = Account.objects.filter(owner_id=user.pk, kind__in=list(WALLET_KINDS))
    return wallets.filter(currency=currency or settings.PLATFORM_CURRENCY).first()


def wallet_history(user: User, currency: str | None = None) -> QuerySet[Posting]:
    """The wallet's ledger lines newest first, each with its entry and the balance right after it."""
    account = wallet_account(user, currency)
    if account is None:
        return Posting.objects.none()
    return Posting.objects.filter(account=account).select_related("entry").order_by("-id")


@dataclass(frozen=True, slots=True)
class Statement:
    month: date  # its first day
    currency: str
    opening: int
    closing: int
    lines: QuerySet[Posting]  # oldest first

    def rows(self) -> Iterator[tuple[str | int, ...]]:
        """CSV rows: the opening balance, every line, the closing balance."""
        yield (self.month.isoformat(), "", "opening_balance", "", "", self.opening, self.currency)
        for posting in self.lines.iterator(chunk_size=1000):
            yield (
                posting.created_at.isoformat().replace("+00:00", "Z"),
                posting.pk,
                posting.entry.kind,
                posting.entry.reference,
                posting.amount,
                posting.balance_after if posting.balance_after is not None else "",
                self.currency,
            )
        yield (_next_month(self.month).isoformat(), "", "closing_balance", "", "", self.closing, self.currency)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def wallet_statement(user: User, month: date, currency: str | None = None) -> Statement:
    """The month's statement: opening = sum of every posting before it, closing = opening + the month's postings."""
    currency = currency or settings.PLATFORM_CURRENCY
    month = month.replace(day=1)
    start, end = _start(month), _start(_next_month(month))
    account = wallet_account(user, currency)
    if account is None:
        return Statement(month=month, currency=currency, opening=0, closing=0, lines=Posting.objects.none())
    postings = Posting.objects.filter(account=account)
    opening = postings.filter(created_at__lt=start).aggregate(total=Sum("amount"))["total"] or 0
    lines = postings.filter(created_at__gte=start, created_at__lt=end).select_related("entry").order_by("id")
    moved = lines.aggregate(total=Sum("amount"))["total"] or 0
    return Statement(month=month, currency=currency, opening=opening, closing=opening + moved, lines=lines)
