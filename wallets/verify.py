"""The ledger's invariants as set-based SQL: each check is one statement, whatever the ledger's size.

Every check returns the first broken row (smallest id) and how many rows are
broken, or nothing when the invariant holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection

from orders.models import Order
from payments.models import Dispute, DisputeStatus, Payment
from wallets.models import WALLET_KINDS, Account, Entry, Posting, Withdrawal, WithdrawalStatus

ACCOUNT = Account._meta.db_table
ENTRY = Entry._meta.db_table
POSTING = Posting._meta.db_table
WITHDRAWAL = Withdrawal._meta.db_table
DISPUTE = Dispute._meta.db_table
PAYMENT = Payment._meta.db_table
ORDER = Order._meta.db_table
_WALLET_KINDS_SQL = ", ".join(f"'{kind.value}'" for kind in WALLET_KINDS)


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


# Each statement selects the broken rows, smallest id first, with COUNT(*) OVER () as the last column.
CHECKS: tuple[Check, ...] = (
    Check(
        "every entry's postings sum to zero",
        f"""
        SELECT entry_id, SUM(amount), COUNT(*) OVER ()
          FROM {POSTING}
         GROUP BY entry_id
        HAVING SUM(amount) <> 0
         ORDER BY entry_id
         LIMIT 1
        """,  # noqa: S608 - table names are ours
        (),
        lambda row: f"entry {row[0]}: postings sum to {row[1]}",
    ),
    Check(
        "every posting is in its entry's and its account's currency",
        f"""
        SELECT p.id, p.entry_id, e.currency, a.id, a.currency, COUNT(*) OVER ()
          FROM {POSTING} p
          JOIN {ENTRY} e ON e.id = p.entry_id
          JOIN {ACCOUNT} a ON a.id = p.account_id
         WHERE e.currency <> a.currency
         ORDER BY p.id
         LIMIT 1
        """,  # noqa: S608
        (),
        lambda row: f"entry {row[1]} ({row[2]}): posting {row[0]} on account {row[3]} ({row[4]})",
    ),
    Check(
        "every wallet's balance equals the sum of its postings",
        f"""
        SELECT a.id, a.balance, COALESCE(s.total, 0), COUNT(*) OVER ()
          FROM {ACCOUNT} a
          LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM {POSTING} GROUP BY account_id) s
                 ON s.account_id = a.id
         WHERE a.kind IN ({_WALLET_KINDS_SQL})
           AND a.balance <> COALESCE(s.total, 0)
         ORDER BY a.id
         LIMIT 1
        """,  # noqa: S608
        (),
        lambda row: f"account {row[0]}: balance {row[1]}, postings sum to {row[2]}",
    ),
    Check(
        "no wallet balance or held amount is negative",
        f"""
        SELECT id, balance, held, COUNT(*) OVER ()
          FROM {ACCOUNT}
         WHERE kind IN ({_WALLET_KINDS_SQL}) AND (balance < 0 OR held < 0)
         ORDER BY id
         LIMIT 1
        """,  # noqa: S608
        (),
        lambda row: f"account {row[0]}: balance {row[1]}, held {row[2]}",
    ),
    Check(
        "every wallet posting records a non-negative balance after it",
        f"""
        SELECT p.id, p.account_id, p.balance_after, COUNT(*) OVER ()
          FROM {POSTING} p
          JOIN {ACCOUNT} a ON a.id = p.account_id
         WHERE a.kind IN ({_WALLET_KINDS_SQL}) AND (p.balance_after IS NULL OR p.balance_after < 0)
         ORDER BY p.id
         LIMIT 1
        """,  # noqa: S608
        (),
        lambda row: f"account {row[1]}: posting {row[0]} has balance_after {row[2]}",
    ),
    Check(
        "every wallet holds exactly its pending withdrawals and open dispute holds",
        f"""
        SELECT a.id, a.held, COALESCE(w.total, 0), COALESCE(d.total, 0), COUNT(*) OVER ()
          FROM {ACCOUNT} a
          LEFT JOIN (SELECT account_id, SUM(amount) AS total
                       FROM {WITHDRAWAL} WHERE status = %s GROUP BY account_id) w
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
         ORDER BY a.id
         LIMIT 1
        """,  # noqa: S608
        (WithdrawalStatus.PENDING.value, DisputeStatus.OPEN.value),
        lambda row: f"account {row[0]}: held {row[1]}, pending withdrawals {row[2]} + open disputes {row[3]}",
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
        accounts, entries, postings = cursor.fetchone()  # type: ignore[misc]
    return {"accounts": accounts, "entries": entries, "postings": postings}
