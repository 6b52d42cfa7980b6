"""Data for the load, written through the ORM into the bench database before any load.

Buyers are funded by balanced ledger entries (card clearing → wallet), with
their wallet balance equal to the sum of their postings, so ``ledger_verify``
holds from the start. JWTs are minted here, before the load.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Role, User
from catalog.models import Product
from wallets.ledger import platform_account_id, platform_accounts_ensure
from wallets.models import Account, AccountKind, Entry, EntryKind, Posting


@dataclass(frozen=True, slots=True)
class Buyer:
    user_id: str
    account_id: str
    token: str


def _users(prefix: str, count: int, role: str) -> list[User]:
    now = timezone.now()
    users = [
        User(email=f"{prefix}-{i}@bench.test", role=role, password="!", first_name="Bench", created_at=now)
        for i in range(count)
    ]
    User.objects.bulk_create(users, batch_size=1000)
    return users


def merchants(prefix: str, count: int) -> list[User]:
    """Merchants with an (empty) merchant wallet each."""
    users = _users(prefix, count, Role.MERCHANT)
    currency = settings.PLATFORM_CURRENCY
    Account.objects.bulk_create(
        [Account(owner=u, kind=AccountKind.MERCHANT, currency=currency) for u in users], batch_size=1000
    )
    return users


def buyers(prefix: str, count: int, funds: int) -> list[Buyer]:
    """Customers whose wallets hold ``funds`` each, credited by one deposit entry per wallet."""
    users = _users(prefix, count, Role.CUSTOMER)
    currency = settings.PLATFORM_CURRENCY
    now = timezone.now()
    with transaction.atomic():
        platform_accounts_ensure(currency)
        accounts = [
            Account(owner=u, kind=AccountKind.CUSTOMER, currency=currency, balance=funds, created_at=now) for u in users
        ]
        Account.objects.bulk_create(accounts, batch_size=1000)
        entries = [
            Entry(
                kind=EntryKind.DEPOSIT,
                currency=currency,
                reference=f"bench-seed-{a.id}",
                idempotency_key=f"bench-seed-{a.id}",
                memo="bench seed funding",
                created_at=now,
            )
            for a in accounts
        ]
        Entry.objects.bulk_create(entries, batch_size=1000)
        clearing = platform_account_id(AccountKind.CARD_CLEARING, currency)
        postings = []
        for account, entry in zip(accounts, entries, strict=True):
            postings.append(
                Posting(entry=entry, account_id=account.id, amount=funds, balance_after=funds, created_at=now)
            )
            postings.append(Posting(entry=entry, account_id=clearing, amount=-funds, created_at=now))
        Posting.objects.bulk_create(postings, batch_size=2000)
    return [
        Buyer(user_id=u.id, account_id=a.id, token=str(AccessToken.for_user(u)))
        for u, a in zip(users, accounts, strict=True)
    ]


def products(owners: list[User], per_merchant: int, *, price: int, stock: int | None, prefix: str) -> list[Product]:
    now = timezone.now()
    items = [
        Product(
            merchant=m,
            name=f"{prefix} {i}-{j}",
            description="A benchmark product.",
            price=price,
            currency=settings.PLATFORM_CURRENCY,
            stock=stock,
            fulfillment=f"BENCH-KEY-{i}-{j}",
            created_at=now,
            updated_at=now,
        )
        for i, m in enumerate(owners)
        for j in range(per_merchant)
    ]
    Product.objects.bulk_create(items, batch_size=1000)
    return items


def code_pools(owners: list[User], per_merchant: int, *, price: int, codes: int, prefix: str) -> list[Product]:
    """Code-pool products with ``codes`` unique codes each; each stock is its count of available codes."""
    from catalog.models import Delivery, ProductCode

    items = products(owners, per_merchant, price=price, stock=codes, prefix=prefix)
    Product.objects.filter(pk__in=[p.pk for p in items]).update(delivery=Delivery.CODES, fulfillment="")
    now = timezone.now()
    pool = [
        ProductCode(product=p, code=f"{prefix.upper()}-{p.pk[-10:]}-{n:05d}", created_at=now)
        for p in items
        for n in range(codes)
    ]
    ProductCode.objects.bulk_create(pool, batch_size=5000)
    return items
