"""Withdrawal controls: card top-ups wait DEPOSIT_COOLING_OFF_HOURS before they can be withdrawn, and a
merchant's card-sale income waits MERCHANT_AVAILABILITY_DAYS in its incoming account before it can be spent.

Cooling-off moves no money: a card top-up is spendable at once, so it stays in the wallet's balance and
``withdrawable`` is that balance less the card credits (``EntryKind.DEPOSIT`` postings) of the last
DEPOSIT_COOLING_OFF_HOURS, read from the postings. Merchant income does move: a card sale credits the
merchant's incoming account (``AccountKind.INCOMING``) instead of the wallet, and ``income_release`` posts
an ``income_released`` entry (incoming -x, wallet +x) under the order's lock; the entries of one order
together release at most what the sale brought in (``ledger_verify`` proves it). Locks: Order → Account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q, Sum
from django.utils import timezone

from accounts.models import Role
from config.db import retry_on_contention
from orders.locks import lock_order
from orders.models import Order
from wallets.ledger import Leg, incoming_id_for, ledger_post, wallet_id_for
from wallets.models import Account, AccountKind, EntryKind, Posting


def cooling_amount(*, account_id: str, at: datetime | None = None) -> int:
    """What of the wallet's balance came from card top-ups within DEPOSIT_COOLING_OFF_HOURS before ``at``."""
    hours = settings.DEPOSIT_COOLING_OFF_HOURS
    if hours <= 0:
        return 0
    at = at or timezone.now()
    total = (
        Posting.objects.filter(
            account_id=account_id,
            entry__kind=EntryKind.DEPOSIT,
            amount__gt=0,
            created_at__gt=at - timedelta(hours=hours),
            created_at__lte=at,
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return int(total)


def withdrawable_amount(*, balance: int, account_id: str, at: datetime | None = None) -> int:
    """The part of ``balance`` that can be withdrawn at ``at``: the balance less its cooling card top-ups.

    Spending takes the withdrawable money first (a top-up still cooling stays unwithdrawable until its
    hours pass, whatever was bought meanwhile): the safe side against card-funded cash-outs.
    """
    return max(0, balance - cooling_amount(account_id=account_id, at=at))


def card_sale_legs(legs: Sequence[Leg], *, merchant_id: str, currency: str) -> list[Leg]:
    """A card sale's purchase legs with the merchant's net sent to its incoming account while
    MERCHANT_AVAILABILITY_DAYS is above zero (unchanged otherwise: the wallet is credited at once)."""
    if settings.MERCHANT_AVAILABILITY_DAYS <= 0:
        return list(legs)
    wallet = wallet_id_for(user_id=merchant_id, role=Role.MERCHANT, currency=currency)
    incoming = incoming_id_for(merchant_id=merchant_id, currency=currency)
    return [Leg(incoming, leg.amount, leg.held) if leg.account_id == wallet else leg for leg in legs]


def income_unreleased(*, order: Order) -> int:
    """What of the order's card-sale income still waits in the merchant's incoming account."""
    total = (
        Posting.objects.filter(account__kind=AccountKind.INCOMING, entry__reference=order.pk).aggregate(
            total=Sum("amount")
        )["total"]
        or 0
    )
    return int(total)


def income_release_locked(*, order: Order, amount: int | None = None) -> int:
    """Makes (up to ``amount`` of) the order's waiting income available in the merchant's wallet.

    The caller holds the order's lock (refunds and disputes release early what they take back; the
    periodic release takes the rest). Each release's idempotency key carries what was waiting before
    it, so the same release can never post twice. Returns the amount released.
    """
    waiting = income_unreleased(order=order)
    release = waiting if amount is None else min(amount, waiting)
    if release <= 0:
        return 0
    incoming = incoming_id_for(merchant_id=order.merchant_id, currency=order.currency)
    ledger_post(
        kind=EntryKind.INCOME_RELEASED,
        currency=order.currency,
        reference=order.pk,
        idempotency_key=f"income_released:{order.pk}:{waiting}",
        memo=f"card-sale income of order {order.pk} made available",
        legs=[
            Leg(incoming, -release),
            Leg(wallet_id_for(user_id=order.merchant_id, role=Role.MERCHANT, currency=order.currency), release),
        ],
    )
    return release


@retry_on_contention()
def income_release(*, order_id: str) -> int:
    """Makes all of an order's waiting card-sale income available. Locks: the order, then the accounts."""
    with transaction.atomic():
        return income_release_locked(order=lock_order(order_id))


def income_due(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Orders whose card-sale income reached an incoming account at least MERCHANT_AVAILABILITY_DAYS
    before ``now`` and still waits there (in part), oldest first."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=max(0, settings.MERCHANT_AVAILABILITY_DAYS))
    waiting_accounts = Account.objects.filter(kind=AccountKind.INCOMING, balance__gt=0).values("pk")
    due = (
        Posting.objects.filter(account_id__in=waiting_accounts)
        .values("entry__reference")
        .annotate(waiting=Sum("amount"), credited_at=Min("created_at", filter=Q(entry__kind=EntryKind.PURCHASE)))
        .filter(waiting__gt=0, credited_at__lte=cutoff)
        .order_by("credited_at", "entry__reference")
        .values_list("entry__reference", flat=True)
    )
    return list(due[:limit])


def income_release_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """The periodic release (``wallets.tasks.income_release_due``): each due order in its own
    transaction. Returns how many orders had income released."""
    released = 0
    for order_id in income_due(now=now, limit=limit):
        if income_release(order_id=order_id):
            released += 1
    return released
