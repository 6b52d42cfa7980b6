"""The ledger's invariants as set-based SQL: each check is one statement, whatever the ledger's size.

Every check returns the first broken row (smallest id) and how many rows are
broken, or nothing when the invariant holds. On PostgreSQL, outside a
transaction, the checks run at the same time, each on its own connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from django.db import connection

from orders.models import Order
from payments.models import Dispute, DisputeStatus, Payment
from wallets.deposits import deposit_key
from wallets.models import (
    OWNED_KINDS,
    WALLET_KINDS,
    WITHDRAWAL_OPEN_STATUSES,
    Account,
    AccountKind,
    Deposit,
    DepositStatus,
    Entry,
    EntryKind,
    Posting,
    Withdrawal,
)

ACCOUNT = Account._meta.db_table
ENTRY = Entry._meta.db_table
POSTING = Posting._meta.db_table
WITHDRAWAL = Withdrawal._meta.db_table
DISPUTE = Dispute._meta.db_table
PAYMENT = Payment._meta.db_table
ORDER = Order._meta.db_table
DEPOSIT = Deposit._meta.db_table
_WALLET_KINDS_SQL = ", ".join(f"'{kind.value}'" for kind in WALLET_KINDS)
# Wallets and merchants' incoming accounts: both keep a balance column that must equal their postings.
_OWNED_KINDS_SQL = ", ".join(f"'{kind.value}'" for kind in OWNED_KINDS)
_INCOMING = AccountKind.INCOMING.value
_DEPOSIT_KEY_PREFIX = deposit_key("")

# Three at a time: the entry sums (the longest) on one connection, the rest shared by two more;
# PostgreSQL adds parallel workers to the larger scans of its own accord.
WORKERS = 3
# Per session on those connections: the entry sums hash ~250 bytes per entry, so 128 MB (times
# hash_mem_multiplier, 2 by default) holds about a million entries; beyond that the hash spills to
# disk, slower but still exact. JIT-compiling these one-off scans costs more than it saves.
_SESSION_SQL = "SET work_mem = '128MB'; SET jit = off"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    sql: str
    params: tuple[Any, ...]
    describe: Callable[[tuple[Any, ...]], str]


@dataclass(frozen=True, slots=True)
class Failure:
    check: str
    broken: int
    first: str


@dataclass(frozen=True, slots=True)
class Outcome:
    check: Check
    failure: Failure | None
    seconds: float


def _first_broken(broken: str, key: str) -> str:
    """The first of the ``broken`` rows by ``key``, with COUNT(*) OVER () as the last column.

    MATERIALIZED keeps the planner from serving ORDER BY … LIMIT 1 by walking an index over
    the whole table (it expects many broken rows); the broken rows are found with hash
    aggregates and joins over sequential scans, then only they are sorted.
    """
    return f"""
        WITH broken AS MATERIALIZED ({broken})
        SELECT *, COUNT(*) OVER () FROM broken ORDER BY {key} LIMIT 1
    """  # noqa: S608 - our own statements and column names


CHECKS: tuple[Check, ...] = (
    Check(
        "every entry's postings sum to zero",
        _first_broken(
            f"SELECT entry_id, SUM(amount) AS total FROM {POSTING} GROUP BY entry_id HAVING SUM(amount) <> 0",  # noqa: S608 - table names are ours
            "entry_id",
        ),
        (),
        lambda row: f"entry {row[0]}: postings sum to {row[1]}",
    ),
    Check(
        "every posting is in its entry's and its account's currency",
        _first_broken(
            f"""
            SELECT p.id AS posting_id, p.entry_id, e.currency AS entry_currency,
                   a.id AS account_id, a.currency AS account_currency
              FROM {POSTING} p
              JOIN {ENTRY} e ON e.id = p.entry_id
              JOIN {ACCOUNT} a ON a.id = p.account_id
             WHERE e.currency <> a.currency
               -- A ledger whose accounts and entries all share one currency cannot break this: proving
               -- that reads the entries once, where the join would hash them all and probe every posting.
               AND (SELECT COUNT(*) FROM (SELECT currency FROM {ACCOUNT} UNION SELECT currency FROM {ENTRY}) c) > 1
            """,  # noqa: S608
            "posting_id",
        ),
        (),
        lambda row: f"entry {row[1]} ({row[2]}): posting {row[0]} on account {row[3]} ({row[4]})",
    ),
    Check(
        "every wallet's balance equals the sum of its postings",
        _first_broken(
            f"""
            SELECT a.id, a.balance, COALESCE(s.total, 0) AS total
              FROM {ACCOUNT} a
              LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM {POSTING} GROUP BY account_id) s
                     ON s.account_id = a.id
             WHERE a.kind IN ({_OWNED_KINDS_SQL})
               AND a.balance <> COALESCE(s.total, 0)
            """,  # noqa: S608
            "id",
        ),
        (),
        lambda row: f"account {row[0]}: balance {row[1]}, postings sum to {row[2]}",
    ),
    Check(
        "no wallet balance or held amount is negative",
        _first_broken(
            f"""
            SELECT id, balance, held
              FROM {ACCOUNT}
             WHERE kind IN ({_OWNED_KINDS_SQL}) AND (balance < 0 OR held < 0 OR (kind = '{_INCOMING}' AND held <> 0))
            """,  # noqa: S608
            "id",
        ),
        (),
        lambda row: f"account {row[0]}: balance {row[1]}, held {row[2]}",
    ),
    Check(
        "every wallet posting records a non-negative balance after it",
        _first_broken(
            f"""
            SELECT p.id, p.account_id, p.balance_after
              FROM {POSTING} p
              JOIN {ACCOUNT} a ON a.id = p.account_id
             WHERE a.kind IN ({_OWNED_KINDS_SQL}) AND (p.balance_after IS NULL OR p.balance_after < 0)
            """,  # noqa: S608
            "id",
        ),
        (),
        lambda row: f"account {row[1]}: posting {row[0]} has balance_after {row[2]}",
    ),
    Check(
        "every wallet holds exactly its pending withdrawals and open dispute holds",
        _first_broken(
            f"""
            SELECT a.id, a.held, COALESCE(w.total, 0) AS withdrawals, COALESCE(d.total, 0) AS disputes
              FROM {ACCOUNT} a
              LEFT JOIN (SELECT account_id, SUM(amount) AS total
                           FROM {WITHDRAWAL} WHERE status IN (%s, %s) GROUP BY account_id) w
                     ON w.account_id = a.id
              LEFT JOIN (SELECT COALESCE(o.merchant_id, p.user_id) AS owner_id, ds.currency,
                                SUM(ds.held_amount) AS total
                           FROM {DISPUTE} ds
                           JOIN {PAYMENT} p ON p.id = ds.payment_id
                           LEFT JOIN {ORDER} o ON o.payment_id = ds.payment_id
                          WHERE ds.status = %s
                          GROUP BY COALESCE(o.merchant_id, p.user_id), ds.currency) d
                     ON d.owner_id = a.owner_id AND d.currency = a.currency
             WHERE a.kind IN ({_WALLET_KINDS_SQL})
               AND a.held <> COALESCE(w.total, 0) + COALESCE(d.total, 0)
            """,  # noqa: S608
            "id",
        ),
        (*(status.value for status in WITHDRAWAL_OPEN_STATUSES), DisputeStatus.OPEN.value),
        lambda row: f"account {row[0]}: held {row[1]}, pending withdrawals {row[2]} + open disputes {row[3]}",
    ),
    Check(
        "every order's card-sale income reached its merchant's incoming account as its net, once",
        _first_broken(
            f"""
            SELECT o.id, a.owner_id, o.merchant_id, COUNT(*) AS credits, SUM(p.amount) AS credited, o.merchant_net
              FROM {POSTING} p
              JOIN {ACCOUNT} a ON a.id = p.account_id
              JOIN {ENTRY} e ON e.id = p.entry_id
              JOIN {ORDER} o ON o.id = e.reference
             WHERE a.kind = '{_INCOMING}' AND e.kind = %s
             GROUP BY o.id, a.owner_id, o.merchant_id, o.merchant_net
            HAVING a.owner_id <> o.merchant_id OR COUNT(*) <> 1 OR SUM(p.amount) <> o.merchant_net
            """,  # noqa: S608
            "id",
        ),
        (EntryKind.PURCHASE.value,),
        lambda row: f"order {row[0]}: {row[3]} credit(s) of {row[4]} to incoming of {row[1]}; net {row[5]} of {row[2]}",
    ),
    Check(
        "no order's income is released beyond what it brought in, nor to another wallet than its merchant's",
        _first_broken(
            f"""
            SELECT e.reference, COALESCE(SUM(p.amount) FILTER (WHERE a.kind = '{_INCOMING}'), 0) AS waiting,
                   COUNT(*) FILTER (WHERE e.kind = %s AND a.kind <> '{_INCOMING}'
                                      AND (a.kind NOT IN ({_WALLET_KINDS_SQL}) OR a.owner_id <> i.owner_id)) AS astray
              FROM {POSTING} p
              JOIN {ENTRY} e ON e.id = p.entry_id
              JOIN {ACCOUNT} a ON a.id = p.account_id
              LEFT JOIN LATERAL (
                    SELECT ia.owner_id FROM {POSTING} ip JOIN {ACCOUNT} ia ON ia.id = ip.account_id
                     WHERE ip.entry_id = e.id AND ia.kind = '{_INCOMING}' LIMIT 1) i ON TRUE
             WHERE e.reference IN (SELECT re.reference FROM {ENTRY} re WHERE re.kind = %s)
               AND (a.kind = '{_INCOMING}' OR e.kind = %s)
             GROUP BY e.reference
            HAVING COALESCE(SUM(p.amount) FILTER (WHERE a.kind = '{_INCOMING}'), 0) < 0
                OR COUNT(*) FILTER (WHERE e.kind = %s AND a.kind <> '{_INCOMING}'
                                      AND (a.kind NOT IN ({_WALLET_KINDS_SQL}) OR a.owner_id <> i.owner_id)) > 0
            """,  # noqa: S608
            "reference",
        ),
        (EntryKind.INCOME_RELEASED.value,) * 4,
        lambda row: f"order {row[0]}: income waiting {row[1]} (released more than credited), {row[2]} leg(s) astray",
    ),
    Check(
        "every succeeded card top-up credited its own wallet once with its amount, as cooling-off reads it",
        _first_broken(
            f"""
            SELECT d.id, d.status, COUNT(p.id) AS credits, COALESCE(SUM(p.amount), 0) AS credited, d.amount
              FROM {DEPOSIT} d
              LEFT JOIN {ENTRY} e ON e.idempotency_key = %s || d.id
              LEFT JOIN {POSTING} p ON p.entry_id = e.id AND p.account_id = d.account_id
             GROUP BY d.id, d.status, d.amount
            HAVING (d.status = %s AND (COUNT(p.id) <> 1 OR COALESCE(SUM(p.amount), 0) <> d.amount))
                OR (d.status <> %s AND COUNT(e.id) > 0)
            """,  # noqa: S608
            "id",
        ),
        (_DEPOSIT_KEY_PREFIX, DepositStatus.SUCCEEDED.value, DepositStatus.SUCCEEDED.value),
        lambda row: f"deposit {row[0]} ({row[1]}): {row[2]} credit(s) of {row[3]}, amount {row[4]}",
    ),
)


def run_check(check: Check) -> Failure | None:
    with connection.cursor() as cursor:
        cursor.execute(check.sql, check.params)
        row = cursor.fetchone()
    if row is None:
        return None
    return Failure(check=check.name, broken=int(row[-1]), first=check.describe(row))


def ledger_size() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {ACCOUNT}), (SELECT COUNT(*) FROM {ENTRY}), (SELECT COUNT(*) FROM {POSTING})"  # noqa: S608
        )
        accounts, entries, postings = cursor.fetchone()
    return {"accounts": accounts, "entries": entries, "postings": postings}


def _outcome(check: Check) -> Outcome:
    started = time.perf_counter()
    failure = run_check(check)
    return Outcome(check=check, failure=failure, seconds=time.perf_counter() - started)


def _on_own_connection(work: Callable[[], T]) -> T:
    """Runs in a pool thread, which Django gives a connection of its own; closed when done."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(_SESSION_SQL)
        return work()
    finally:
        connection.close()


class Verification:
    """The ledger's size and every check's outcome, in ``checks`` order.

    Outside a transaction, everything is submitted at once to a small pool
    whose threads each use a connection of their own (psycopg releases the
    GIL while the server works). Inside a transaction (tests, a caller's
    atomic block) other connections could not see its writes, so the checks
    run one after the other on the caller's connection.
    """

    def __init__(self, checks: tuple[Check, ...] = CHECKS, *, workers: int = WORKERS) -> None:
        self.checks = checks
        self.concurrent = not connection.in_atomic_block
        self._pool: ThreadPoolExecutor | None = None
        self._size: Future[dict[str, int]] | None = None
        self._outcomes: list[Future[Outcome]] = []
        if self.concurrent:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger_verify")
            self._size = self._pool.submit(_on_own_connection, ledger_size)
            self._outcomes = [self._pool.submit(_on_own_connection, partial(_outcome, check)) for check in checks]

    def size(self) -> dict[str, int]:
        return self._size.result() if self._size is not None else ledger_size()

    def outcomes(self) -> Iterator[Outcome]:
        """Each check's outcome as soon as it and the checks before it are done."""
        if self.concurrent:
            for future in self._outcomes:
                yield future.result()
        else:
            for check in self.checks:
                yield _outcome(check)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Verification:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
