"""The ledger service: the only code that writes postings or wallet balances.

Other apps call ``ledger_post`` inside their own transaction. It locks the
wallet accounts an entry touches (pk order, see ``wallets.locks``), checks
that no wallet would go below zero, updates their balances and writes the
entry with its postings: four statements whatever the number of legs.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import InsufficientFunds
from wallets.locks import lock_accounts
from wallets.models import PLATFORM_KINDS, WALLET_KINDS, Account, AccountKind, Entry, Posting


class LedgerError(Exception):
    """A programming error in how an entry was assembled (never the client's fault)."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One line of an entry: ``amount`` is what the account gains (negative: gives).

    ``held`` changes a wallet's held amount in the same locked update; a leg
    may carry only a hold change (``amount=0``), which writes no posting.
    """

    account_id: str
    amount: int
    held: int = 0


# --- accounts ----------------------------------------------------------------


def platform_account_id(kind: str, currency: str) -> str:
    """Platform accounts have fixed ids, so posting to them needs no look-up."""
    return f"acc_{kind}_{currency}"


@functools.cache
def platform_account_ids(currency: str) -> frozenset[str]:
    return frozenset(platform_account_id(kind, currency) for kind in PLATFORM_KINDS)


_ensured_currencies: set[str] = set()
_ensured_lock = threading.Lock()


def platform_accounts_ensure(currency: str) -> None:
    """Creates the platform accounts of a currency if they are missing (idempotent)."""
    if currency in _ensured_currencies:
        return
    Account.objects.bulk_create(
        [
            Account(id=platform_account_id(kind, currency), kind=kind, currency=currency, owner=None)
            for kind in PLATFORM_KINDS
        ],
        ignore_conflicts=True,
    )

    def remember() -> None:
        with _ensured_lock:
            _ensured_currencies.add(currency)

    transaction.on_commit(remember)


def platform_accounts_forget() -> None:
    """Drops the in-process memory of created platform accounts (after a database flush)."""
    with _ensured_lock:
        _ensured_currencies.clear()


_wallet_ids: dict[tuple[str, str], str] = {}


def wallet_open(*, user_id: str, kind: str, currency: str | None = None) -> Account:
    """Returns the user's wallet in ``currency``, creating it on first need (race-safe)."""
    currency = currency or settings.PLATFORM_CURRENCY
    if kind not in WALLET_KINDS:
        raise LedgerError(f"{kind} is not a wallet kind")
    account = Account.objects.filter(owner_id=user_id, currency=currency).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(owner_id=user_id, kind=kind, currency=currency)
    except IntegrityError:
        return Account.objects.get(owner_id=user_id, currency=currency)


def wallet_id_for(*, user_id: str, role: str, currency: str | None = None) -> str:
    """The id of the user's wallet, remembered in-process once committed.

    A wallet is never deleted and a user id is never reused, so a remembered
    id can never point at the wrong row.
    """
    currency = currency or settings.PLATFORM_CURRENCY
    key = (user_id, currency)
    cached = _wallet_ids.get(key)
    if cached is not None:
        return cached
    kind = AccountKind.MERCHANT if role == "merchant" else AccountKind.CUSTOMER
    account_id = wallet_open(user_id=user_id, kind=kind, currency=currency).id
    transaction.on_commit(lambda: _wallet_ids.__setitem__(key, account_id))
    return account_id


# --- posting -----------------------------------------------------------------


def ledger_post(
    *,
    kind: str,
    currency: str,
    reference: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    memo: str = "",
) -> Entry:
    """Posts one balanced entry and moves the balances of the wallets it touches.

    Locks: the wallet accounts among ``legs`` (pk order). Must run inside the
    caller's transaction, which has already taken every lock that comes earlier
    in the global order. Raises ``InsufficientFunds`` when a wallet would go
    below zero, ``IntegrityError`` when ``idempotency_key`` was posted before.
    """
    if sum(leg.amount for leg in legs) != 0:
        raise LedgerError(f"entry {idempotency_key} does not balance: {[leg.amount for leg in legs]}")
    if not any(leg.amount for leg in legs) and not any(leg.held for leg in legs):
        raise LedgerError(f"entry {idempotency_key} moves nothing")

    platform_accounts_ensure(currency)
    with transaction.atomic(savepoint=False):
        wallet_ids = {leg.account_id for leg in legs} - platform_account_ids(currency)
        wallets = lock_accounts(wallet_ids)
        if len(wallets) != len(wallet_ids):
            raise LedgerError(f"unknown wallet accounts: {sorted(wallet_ids - wallets.keys())}")

        now = timezone.now()
        entry = Entry(
            kind=kind,
            currency=currency,
            reference=reference,
            idempotency_key=idempotency_key,
            memo=memo[:255],
            created_at=now,
        )
        postings: list[Posting] = []
        for leg in legs:
            wallet = wallets.get(leg.account_id)
            balance_after = None
            if wallet is not None:
                if wallet.currency != currency:
                    raise LedgerError(f"{wallet.id} holds {wallet.currency}, entry is {currency}")
                if wallet.balance + leg.amount < 0:
                    raise InsufficientFunds(
                        f"Wallet balance {wallet.balance} is less than {-leg.amount}.",
                        param="amount",
                    )
                if wallet.held + leg.held < 0:
                    raise LedgerError(f"{wallet.id} would hold less than nothing")
                wallet.balance += leg.amount
                wallet.held += leg.held
                wallet.updated_at = now
                balance_after = wallet.balance
            elif leg.held:
                raise LedgerError("only wallets hold funds")
            if leg.amount:
                postings.append(
                    Posting(
                        entry=entry,
                        account_id=leg.account_id,
                        amount=leg.amount,
                        balance_after=balance_after,
                        created_at=now,
                    )
                )

        if wallets:
            Account.objects.bulk_update(list(wallets.values()), ["balance", "held", "updated_at"])
        entry.save()
        Posting.objects.bulk_create(postings)
    return entry
