"""The ledger: the only code that writes postings or wallet balances, and the platform's accounts.

Callers hold every lock that comes before the wallet accounts in the global order (Order → Payment →
Refund → Dispute → Product → Deposit/Withdrawal → Account); ``ledger_post`` then locks the wallets.

Other apps call ``ledger_post`` inside their own transaction. It locks the wallet accounts an entry
touches (pk order, see ``wallets.locks``), checks that no wallet would go below zero, updates their
balances and writes the entry with its postings: four statements whatever the number of legs.
``ledger_post_statement`` is the same as parts of one PostgreSQL statement, for the wallet purchase,
whose whole transaction is one round trip.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import audit_record
from config import metrics
from config.db import insert_values, prepared_cursor, retry_on_contention
from config.errors import InsufficientFunds, NotFound, ValidationFailed
from config.ids import new_id
from wallets.errors import LedgerError
from wallets.locks import lock_accounts
from wallets.models import PLATFORM_KINDS, WALLET_KINDS, Account, AccountKind, Entry, EntryKind, Posting

_ACCOUNT = Account._meta.db_table
_POSTING = Posting._meta.db_table
_WALLET_ID_SQL = (
    f"SELECT id FROM {_ACCOUNT} WHERE owner_id = %s AND currency = %s"  # noqa: S608 - our table, our kinds
    f" AND kind IN ({', '.join(repr(str(kind)) for kind in WALLET_KINDS)})"
)


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


def wallet_ids_forget() -> None:
    """Drops the in-process memory of wallet ids (after a database flush or a test's rollback)."""
    _wallet_ids.clear()


def wallet_id_for(*, user_id: str, role: str, currency: str | None = None) -> str:
    """The id of the user's wallet in ``currency``, opened on first need (race-safe) and
    remembered in-process once committed.

    A wallet is never deleted and a user id is never reused, so a remembered
    id can never point at the wrong row.
    """
    currency = currency or settings.PLATFORM_CURRENCY
    key = (user_id, currency)
    cached = _wallet_ids.get(key)
    if cached is not None:
        return cached
    account_id = _wallet_id_read(user_id, currency)
    if account_id is None:
        kind = AccountKind.MERCHANT if role == Role.MERCHANT else AccountKind.CUSTOMER
        try:
            with transaction.atomic():
                account_id = Account.objects.create(owner_id=user_id, kind=kind, currency=currency).id
        except IntegrityError:  # opened concurrently
            account_id = _wallet_id_read(user_id, currency)
            assert account_id is not None
    transaction.on_commit(lambda: _wallet_ids.__setitem__(key, account_id))
    return account_id


_incoming_ids: dict[tuple[str, str], str] = {}


def incoming_id_for(*, merchant_id: str, currency: str) -> str:
    """The id of the merchant's incoming account in ``currency`` (card-sale income not yet available),
    opened on first need (race-safe) and remembered in-process once committed."""
    key = (merchant_id, currency)
    cached = _incoming_ids.get(key)
    if cached is not None:
        return cached
    found = Account.objects.filter(owner_id=merchant_id, currency=currency, kind=AccountKind.INCOMING)
    account_id = found.values_list("pk", flat=True).first()
    if account_id is None:
        try:
            with transaction.atomic():
                account_id = Account.objects.create(
                    owner_id=merchant_id, kind=AccountKind.INCOMING, currency=currency
                ).id
        except IntegrityError:  # opened concurrently
            account_id = found.values_list("pk", flat=True).first()
            assert account_id is not None
    transaction.on_commit(lambda: _incoming_ids.__setitem__(key, account_id))
    return account_id


def _wallet_id_read(user_id: str, currency: str) -> str | None:
    with prepared_cursor() as cursor:  # a purchase's first look-up in this process: keep it cheap
        cursor.execute(_WALLET_ID_SQL, [user_id, currency])
        row = cursor.fetchone()
    return None if row is None else str(row[0])


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
    _check_entry(legs, idempotency_key)
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
            _store_balances(list(wallets.values()))
        entry.save()
        Posting.objects.bulk_create(postings)
        metrics.count_ledger_entry_on_commit(kind=kind)
    return entry


def _check_entry(legs: Sequence[Leg], idempotency_key: str) -> None:
    if sum(leg.amount for leg in legs) != 0:
        raise LedgerError(f"entry {idempotency_key} does not balance: {[leg.amount for leg in legs]}")
    if not any(leg.amount for leg in legs) and not any(leg.held for leg in legs):
        raise LedgerError(f"entry {idempotency_key} moves nothing")


@dataclass(frozen=True, slots=True)
class LedgerStatement:
    """``ledger_post`` as parts of one PostgreSQL statement (see ``ledger_post_statement``)."""

    ctes: list[str]  # "name AS (…)", in order
    params: list[Any]  # their parameters, in the same order
    last_wallet: str | None  # the CTE of the last wallet updated: one row iff every wallet moved
    entry: Entry
    legs: Sequence[Leg]


def ledger_post_statement(
    *,
    kind: str,
    currency: str,
    reference: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    after: str,
    now: datetime,
) -> LedgerStatement:
    """``ledger_post`` as common table expressions, for a caller that does its
    whole transaction in one round trip (PostgreSQL only).

    Each wallet leg is one conditional ``UPDATE … RETURNING``, in pk order, and
    each runs only once the one before it returned its row, the first only once
    the caller's CTE ``after`` has a row: so the wallets are locked after the
    caller's own locks and in pk order, as ``lock_accounts`` would. A wallet
    moves only if it is in ``currency`` and neither its balance nor its held
    amount would go below zero. The entry and its postings (with each wallet's
    balance after) are inserted by the same statement.

    The caller must roll back unless ``last_wallet`` returned a row, and then
    raise ``ledger_refusal(statement)``.
    """
    _check_entry(legs, idempotency_key)
    platform_accounts_ensure(currency)
    platform = platform_account_ids(currency)
    if any(leg.held for leg in legs if leg.account_id in platform):
        raise LedgerError("only wallets hold funds")
    wallet_legs = sorted((leg for leg in legs if leg.account_id not in platform), key=lambda leg: leg.account_id)
    if len({leg.account_id for leg in wallet_legs}) != len(wallet_legs):
        raise LedgerError(f"entry {idempotency_key} has two legs on one wallet")

    entry = Entry(
        kind=kind,
        currency=currency,
        reference=reference,
        idempotency_key=idempotency_key,
        memo="",
        created_at=now,
    )
    ctes: list[str] = []
    params: list[Any] = []
    previous = after
    wallet_ctes: list[str] = []
    for index, leg in enumerate(wallet_legs):
        name = f"ledger_wallet_{index}"
        ctes.append(
            f"{name} AS (UPDATE {_ACCOUNT} SET balance = balance + %s, held = held + %s, updated_at = %s"  # noqa: S608
            " WHERE id = %s AND currency = %s AND balance + %s >= 0 AND held + %s >= 0"
            f" AND EXISTS (SELECT 1 FROM {previous}) RETURNING id, balance)"
        )
        params += [leg.amount, leg.held, now, leg.account_id, currency, leg.amount, leg.held]
        previous = name
        wallet_ctes.append(name)

    entry_sql, entry_params = insert_values(entry)
    ctes.append(f"ledger_entry AS ({entry_sql})")
    params += entry_params

    moving = [leg for leg in legs if leg.amount]
    rows = ", ".join(["(%s, %s, %s::bigint)"] * len(moving))
    params += [now, entry.pk]  # the SELECT's two, ahead of the VALUES
    for leg in moving:
        params += [Posting._meta.pk.get_default(), leg.account_id, leg.amount]
    balances = " UNION ALL ".join(f"SELECT id, balance FROM {name}" for name in wallet_ctes)  # noqa: S608
    join = f" LEFT JOIN ({balances}) AS w ON w.id = v.account_id" if wallet_ctes else ""
    after_column = "w.balance" if wallet_ctes else "NULL::bigint"
    ctes.append(
        # Names are ours, every value is a parameter.
        f"ledger_postings AS (INSERT INTO {_POSTING} (id, amount, balance_after, created_at, account_id, entry_id)"  # noqa: S608
        f" SELECT v.id, v.amount, {after_column}, %s, v.account_id, %s"
        f" FROM (VALUES {rows}) AS v(id, account_id, amount){join})"
    )
    return LedgerStatement(ctes, params, wallet_ctes[-1] if wallet_ctes else None, entry, legs)


def ledger_refusal(statement: LedgerStatement) -> Exception:
    """Why a ``ledger_post_statement`` moved not every wallet: InsufficientFunds,
    or a LedgerError for a wallet that is missing or in another currency."""
    currency = statement.entry.currency
    ids = {leg.account_id for leg in statement.legs} - platform_account_ids(currency)
    wallets = {a.id: a for a in Account.objects.filter(id__in=ids)}
    for leg in statement.legs:
        if leg.account_id not in ids:
            continue
        wallet = wallets.get(leg.account_id)
        if wallet is None:
            return LedgerError(f"unknown wallet account: {leg.account_id}")
        if wallet.currency != currency:
            return LedgerError(f"{wallet.id} holds {wallet.currency}, entry is {currency}")
        if wallet.balance + leg.amount < 0:
            return InsufficientFunds(f"Wallet balance {wallet.balance} is less than {-leg.amount}.", param="amount")
    # Moved meanwhile (a deposit landed after the statement read the balance): still refused this time.
    return InsufficientFunds("Wallet balance is less than the amount.", param="amount")


def _store_balances(accounts: list[Account]) -> None:
    """Writes the new balances of locked wallets in one plain ``UPDATE … FROM (VALUES …)``: the hot
    path of every purchase, where ``bulk_update``'s CASE expressions cost more Python time than the
    database spends on the statement."""
    rows = ", ".join(["(%s, %s::bigint, %s::bigint, %s::timestamptz)"] * len(accounts))
    params: list[Any] = []
    for account in accounts:
        params += [account.id, account.balance, account.held, account.updated_at]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Account._meta.db_table} AS a"  # noqa: S608 - our table name; values are parameters
            " SET balance = v.balance, held = v.held, updated_at = v.updated_at"
            f" FROM (VALUES {rows}) AS v(id, balance, held, updated_at) WHERE a.id = v.id",
            params,
        )


# --- wallet funding by staff ------------------------------------------------------


@retry_on_contention()
def wallet_adjust(
    *, account_id: str, amount: int, reason: str, actor: User | None, idempotency_key: str | None = None
) -> Entry:
    """Credits (amount > 0) or debits (amount < 0) a wallet against the platform adjustments account.

    Staff only (demos, tests, corrections); audited. Locks: the wallet account.
    Raises ``InsufficientFunds`` when a debit would take the wallet below zero.
    """
    if type(amount) is not int or amount == 0:
        raise ValidationFailed("An adjustment is a non-zero integer of minor units.", param="amount")
    if not reason.strip():
        raise ValidationFailed("An adjustment needs a reason.", param="reason")
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.is_wallet:
        raise NotFound(f"No wallet {account_id}.", param="account")
    key = idempotency_key or f"adjustment:{new_id('ent')}"
    with transaction.atomic():
        entry = ledger_post(
            kind=EntryKind.ADJUSTMENT,
            currency=account.currency,
            reference=account.id,
            idempotency_key=key,
            memo=reason,
            legs=[
                Leg(account.id, amount),
                Leg(platform_account_id(AccountKind.ADJUSTMENTS, account.currency), -amount),
            ],
        )
        audit_record(
            actor=actor,
            action="wallet.adjust",
            object_type="account",
            object_id=account.id,
            data={"amount": amount, "currency": account.currency, "reason": reason, "entry": entry.id},
        )
    return entry
