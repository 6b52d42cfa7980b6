"""The ledger service: the only code that writes postings or wallet balances.

Other apps call ``ledger_post`` inside their own transaction. It locks the
wallet accounts an entry touches (pk order, see ``wallets.locks``), checks
that no wallet would go below zero, updates their balances and writes the
entry with its postings: four statements whatever the number of legs.
``ledger_post_statement`` is the same as parts of one PostgreSQL statement,
for the wallet purchase, whose whole transaction is one round trip.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.services import audit_record
from config.db import insert_values, prepared_cursor, retry_on_contention
from config.errors import InsufficientFunds, NotFound, PaymentMethodInvalid, ValidationFailed
from config.ids import new_id
from payments.models import Payment, PaymentStatus
from wallets.errors import AmountOutsideLimits, WithdrawalNotPending
from wallets.locks import lock_accounts, lock_deposit, lock_withdrawal
from wallets.models import (
    PLATFORM_KINDS,
    Account,
    AccountKind,
    Deposit,
    DepositStatus,
    Entry,
    EntryKind,
    Posting,
    Withdrawal,
    WithdrawalStatus,
)

if TYPE_CHECKING:
    from accounts.models import User

_ACCOUNT = Account._meta.db_table
_POSTING = Posting._meta.db_table
_WALLET_ID_SQL = f"SELECT id FROM {_ACCOUNT} WHERE owner_id = %s AND currency = %s"  # noqa: S608 - our table


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
        kind = AccountKind.MERCHANT if role == "merchant" else AccountKind.CUSTOMER
        try:
            with transaction.atomic():
                account_id = Account.objects.create(owner_id=user_id, kind=kind, currency=currency).id
        except IntegrityError:  # opened concurrently
            account_id = _wallet_id_read(user_id, currency)
            assert account_id is not None
    transaction.on_commit(lambda: _wallet_ids.__setitem__(key, account_id))
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
        params += [Posting._meta.pk.get_default(), leg.account_id, leg.amount]  # type: ignore[union-attr]
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
    """Writes the new balances of locked wallets in one statement.

    On PostgreSQL a plain ``UPDATE … FROM (VALUES …)``: the hot path of every
    purchase, where ``bulk_update``'s CASE expressions cost more Python time
    than the database spends on the statement.
    """
    if connection.vendor != "postgresql":
        Account.objects.bulk_update(accounts, ["balance", "held", "updated_at"])
        return
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


def _wallet_for(user: User, currency: str | None = None) -> str:
    return wallet_id_for(user_id=user.pk, role=user.role, currency=currency)


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


# --- deposits ----------------------------------------------------------------------


def _check_limits(amount: int, minimum: int, maximum: int, what: str) -> None:
    if amount < minimum or amount > maximum:
        raise AmountOutsideLimits(
            f"A {what} must be between {minimum} and {maximum} minor units; got {amount}.", param="amount"
        )


def deposit_key(deposit_id: str) -> str:
    """The ledger idempotency key of a deposit's credit: one credit per deposit, ever."""
    return f"deposit:{deposit_id}"


def deposit_create(*, user: User, amount: int, payment_method_id: str) -> Deposit:
    """Tops up the user's wallet from a saved card.

    In one transaction the deposit (pending) and its card payment are recorded;
    after commit the card is charged through ``payments`` (no lock held), whose
    outcome reaches ``deposit_on_payment_changed``. Raises ``LimitExceeded``,
    and whatever the charge raises (``CardDeclined``, ``PaymentMethodInvalid``,
    ``StripeUnavailable``) after the outcome is recorded.
    """
    _check_limits(amount, settings.MINIMUM_DEPOSIT, settings.MAXIMUM_DEPOSIT, "deposit")
    # Imported here: payments calls back into this module (deposit_on_payment_changed).
    from payments.services import card_payment_confirm, payment_create

    currency = settings.PLATFORM_CURRENCY
    with transaction.atomic():
        account_id = _wallet_for(user, currency)
        payment = payment_create(user=user, kind="deposit", method="card", amount=amount, currency=currency)
        now = timezone.now()
        deposit = Deposit(
            user=user,
            account_id=account_id,
            amount=amount,
            currency=currency,
            payment=payment,
            created_at=now,
            updated_at=now,
        )
        deposit.save(force_insert=True)
    try:
        card_payment_confirm(payment_id=payment.id, payment_method_id=payment_method_id)
    except PaymentMethodInvalid:
        _deposit_abandon_uncharged(payment.id)
        raise
    return Deposit.objects.select_related("payment").get(pk=deposit.pk)


def _deposit_abandon_uncharged(payment_id: str) -> None:
    """A card refused before it reached Stripe leaves nothing to wait for: the deposit ends canceled."""
    from payments.services import card_payment_cancel

    untouched = Payment.objects.filter(
        pk=payment_id, status=PaymentStatus.REQUIRES_PAYMENT_METHOD, stripe_payment_intent_id__isnull=True
    ).exists()
    if untouched:
        card_payment_cancel(payment_id=payment_id)  # no intent: recorded locally, no Stripe call


def deposit_on_payment_changed(*, payment: Payment) -> None:
    """Brings a deposit in line with its payment; safe to call any number of times, in any order.

    Called by ``payments`` inside its transaction, holding the payment's row
    lock. Locks: the deposit, then (through ``ledger_post``) the wallet. A
    succeeded payment credits the wallet exactly once (the entry's idempotency
    key is the deposit's); a deposit that was credited stays succeeded.
    """
    deposit_id = Deposit.objects.filter(payment_id=payment.pk).values_list("pk", flat=True).first()
    if deposit_id is None:
        return
    deposit = lock_deposit(deposit_id)
    if deposit.status == DepositStatus.SUCCEEDED:
        return
    now = timezone.now()
    if payment.status == PaymentStatus.SUCCEEDED:
        # The card was charged: the money is the customer's whatever an earlier
        # attempt reported, so a failed deposit is credited too.
        key = deposit_key(deposit.pk)
        if not Entry.objects.filter(idempotency_key=key).exists():
            ledger_post(
                kind=EntryKind.DEPOSIT,
                currency=deposit.currency,
                reference=deposit.pk,
                idempotency_key=key,
                memo=f"payment {payment.pk}",
                legs=[
                    Leg(platform_account_id(AccountKind.CARD_CLEARING, deposit.currency), -deposit.amount),
                    Leg(deposit.account_id, deposit.amount),
                ],
            )
        deposit.status = DepositStatus.SUCCEEDED
        deposit.completed_at = now
    elif payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and deposit.status == DepositStatus.PENDING:
        deposit.status = DepositStatus.FAILED if payment.status == PaymentStatus.FAILED else DepositStatus.CANCELED
        deposit.completed_at = now
    else:
        return
    deposit.updated_at = now
    deposit.save(update_fields=["status", "completed_at", "updated_at"])


# --- withdrawals -------------------------------------------------------------------


@retry_on_contention()
def withdrawal_request(*, user: User, amount: int) -> Withdrawal:
    """Asks for a payout: the amount leaves the wallet's balance and is held at once.

    Locks: the wallet account (through ``ledger_post``). Raises ``LimitExceeded``
    and ``InsufficientFunds`` (available balance below ``amount``).
    """
    _check_limits(amount, settings.MINIMUM_WITHDRAWAL, settings.MAXIMUM_WITHDRAWAL, "withdrawal")
    currency = settings.PLATFORM_CURRENCY
    with transaction.atomic():
        account_id = _wallet_for(user, currency)
        now = timezone.now()
        withdrawal = Withdrawal(
            user=user,
            account_id=account_id,
            amount=amount,
            currency=currency,
            created_at=now,
            updated_at=now,
        )
        withdrawal.save(force_insert=True)
        ledger_post(
            kind=EntryKind.WITHDRAWAL_HOLD,
            currency=currency,
            reference=withdrawal.pk,
            idempotency_key=f"withdrawal_hold:{withdrawal.pk}",
            legs=[
                Leg(account_id, -amount, held=amount),
                Leg(platform_account_id(AccountKind.WITHDRAWALS_IN_FLIGHT, currency), amount),
            ],
        )
    return withdrawal


def _withdrawal_decide(*, withdrawal_id: str, actor: User | None, approve: bool, reason: str) -> Withdrawal:
    with transaction.atomic():
        try:
            withdrawal = lock_withdrawal(withdrawal_id)
        except Withdrawal.DoesNotExist as exc:
            raise NotFound(f"No withdrawal {withdrawal_id}.", param="withdrawal") from exc
        if withdrawal.status != WithdrawalStatus.PENDING:
            raise WithdrawalNotPending(f"Withdrawal {withdrawal.pk} is {withdrawal.status}.")
        in_flight = platform_account_id(AccountKind.WITHDRAWALS_IN_FLIGHT, withdrawal.currency)
        if approve:
            kind, status = EntryKind.WITHDRAWAL_PAID, WithdrawalStatus.PAID
            legs = [
                Leg(in_flight, -withdrawal.amount),
                Leg(platform_account_id(AccountKind.PAYOUTS, withdrawal.currency), withdrawal.amount),
                Leg(withdrawal.account_id, 0, held=-withdrawal.amount),
            ]
        else:
            kind, status = EntryKind.WITHDRAWAL_RELEASED, WithdrawalStatus.REJECTED
            legs = [
                Leg(in_flight, -withdrawal.amount),
                Leg(withdrawal.account_id, withdrawal.amount, held=-withdrawal.amount),
            ]
        entry = ledger_post(
            kind=kind,
            currency=withdrawal.currency,
            reference=withdrawal.pk,
            idempotency_key=f"{kind}:{withdrawal.pk}",
            memo=reason,
            legs=legs,
        )
        now = timezone.now()
        withdrawal.status = status
        withdrawal.reason = reason[:255]
        withdrawal.decided_by = actor
        withdrawal.decided_at = now
        withdrawal.updated_at = now
        withdrawal.save(update_fields=["status", "reason", "decided_by", "decided_at", "updated_at"])
        audit_record(
            actor=actor,
            action=f"withdrawal.{'approve' if approve else 'reject'}",
            object_type="withdrawal",
            object_id=withdrawal.pk,
            data={"amount": withdrawal.amount, "currency": withdrawal.currency, "reason": reason, "entry": entry.pk},
        )
    return withdrawal


@retry_on_contention()
def withdrawal_approve(*, withdrawal_id: str, actor: User | None, reason: str = "") -> Withdrawal:
    """Staff pay a pending withdrawal out: the held amount leaves the platform.

    Locks: the withdrawal, then the wallet account. Audited. Raises ``NotFound``
    and ``InvalidStatus`` (not pending).
    """
    return _withdrawal_decide(withdrawal_id=withdrawal_id, actor=actor, approve=True, reason=reason)


@retry_on_contention()
def withdrawal_reject(*, withdrawal_id: str, actor: User | None, reason: str) -> Withdrawal:
    """Staff refuse a pending withdrawal: the held amount goes back to the wallet's balance.

    Locks: the withdrawal, then the wallet account. Audited. Raises ``NotFound``
    and ``InvalidStatus`` (not pending).
    """
    return _withdrawal_decide(withdrawal_id=withdrawal_id, actor=actor, approve=False, reason=reason)
