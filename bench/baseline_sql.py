"""baseline_sql_hot_row: the purchase in raw SQL, the database's ceiling for a hot product.

Same round trips and rows as a wallet purchase, with no framework: lock the
product row and take one from its stock, lock and debit the buyer's wallet,
credit the merchant's wallet, insert the payment, the order, the ledger entry
and its three postings, commit. Runs in a schema of its own in the bench
database, so the platform's tables are untouched.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from bench.load import Record
from bench.stack import cpu_by_pid

STATEMENTS_PER_PURCHASE = 9  # BEGIN, 3 UPDATE, 4 INSERT, COMMIT

SCHEMA = "bench_baseline"

_DDL = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.product (id text PRIMARY KEY, merchant_id text NOT NULL, price bigint NOT NULL,
    stock integer CHECK (stock >= 0), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {SCHEMA}.account (id text PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {SCHEMA}.payment (id bigserial PRIMARY KEY, buyer text NOT NULL, amount bigint NOT NULL,
    status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {SCHEMA}.orders (id bigserial PRIMARY KEY, buyer text NOT NULL, product_id text NOT NULL,
    payment_id bigint NOT NULL, amount bigint NOT NULL, status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON {SCHEMA}.orders (buyer, id);
CREATE TABLE {SCHEMA}.entry (id bigserial PRIMARY KEY, reference text NOT NULL, idempotency_key text UNIQUE NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {SCHEMA}.posting (id bigserial PRIMARY KEY, entry_id bigint NOT NULL REFERENCES {SCHEMA}.entry,
    account_id text NOT NULL, amount bigint NOT NULL, balance_after bigint);
CREATE INDEX ON {SCHEMA}.posting (account_id, id);
"""


def prepare(db_url: str, clients: int, stock: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(_DDL)
        conn.execute(
            f"INSERT INTO {SCHEMA}.product (id, merchant_id, price, stock) VALUES ('hot', 'acc_m', 1000, %s)", [stock]
        )
        conn.execute(f"INSERT INTO {SCHEMA}.account (id, balance) VALUES ('acc_m', 0)")
        for i in range(clients):
            conn.execute(f"INSERT INTO {SCHEMA}.account (id, balance) VALUES (%s, 1000000000000)", [f"acc_b{i}"])


def _purchase(conn: psycopg.Connection[Any], buyer: str, key: str) -> bool:
    with conn.transaction():
        row = conn.execute(
            f"UPDATE {SCHEMA}.product SET stock = stock - 1, updated_at = now() "
            "WHERE id = 'hot' AND stock >= 1 RETURNING merchant_id, price"
        ).fetchone()
        if row is None:
            return False
        merchant, price = row
        fee = (price * 500 + 5000) // 10000
        (buyer_after,) = conn.execute(
            f"UPDATE {SCHEMA}.account SET balance = balance - %s, updated_at = now() WHERE id = %s RETURNING balance",
            [price, buyer],
        ).fetchone()  # type: ignore[misc]
        (merchant_after,) = conn.execute(
            f"UPDATE {SCHEMA}.account SET balance = balance + %s, updated_at = now() WHERE id = %s RETURNING balance",
            [price - fee, merchant],
        ).fetchone()  # type: ignore[misc]
        (payment_id,) = conn.execute(
            f"INSERT INTO {SCHEMA}.payment (buyer, amount, status) VALUES (%s, %s, 'succeeded') RETURNING id",
            [buyer, price],
        ).fetchone()  # type: ignore[misc]
        (order_id,) = conn.execute(
            f"INSERT INTO {SCHEMA}.orders (buyer, product_id, payment_id, amount, status) "
            "VALUES (%s, 'hot', %s, %s, 'paid') RETURNING id",
            [buyer, payment_id, price],
        ).fetchone()  # type: ignore[misc]
        (entry_id,) = conn.execute(
            f"INSERT INTO {SCHEMA}.entry (reference, idempotency_key) VALUES (%s, %s) RETURNING id",
            [f"ord_{order_id}", key],
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            f"INSERT INTO {SCHEMA}.posting (entry_id, account_id, amount, balance_after) "
            "VALUES (%s, %s, %s, %s), (%s, %s, %s, %s), (%s, 'acc_fees', %s, NULL)",
            [entry_id, buyer, -price, buyer_after, entry_id, merchant, price - fee, merchant_after, entry_id, fee],
        )
    return True


def run(db_url: str, *, clients: int, duration: float, max_requests: int) -> tuple[list[Record], float, float]:
    """Runs ``clients`` threads, one connection each; returns (records, wall, CPU seconds of their backends)."""
    records: list[Record] = []
    backend_cpu: list[float] = []
    lock = threading.Lock()
    issued = 0
    start = threading.Barrier(clients + 1)
    t0 = 0.0

    def client(index: int) -> None:
        nonlocal issued
        buyer = f"acc_b{index}"
        with psycopg.connect(db_url, autocommit=True) as conn:
            backend = conn.info.backend_pid
            before = cpu_by_pid([backend]).get(backend, 0.0)
            try:
                _client_loop(conn, index, buyer)
            finally:
                after = cpu_by_pid([backend]).get(backend, before)
                with lock:
                    backend_cpu.append(after - before)

    def _client_loop(conn: psycopg.Connection[Any], index: int, buyer: str) -> None:
        nonlocal issued
        start.wait()
        seq = 0
        while True:
            with lock:
                if issued >= max_requests:
                    return
                issued += 1
            now = time.perf_counter()
            if now - t0 >= duration:
                return
            seq += 1
            status = 201
            try:
                if not _purchase(conn, buyer, f"c{index}-{seq}"):
                    status = 409
            except psycopg.Error:
                status = 500
            ended = time.perf_counter()
            with lock:
                records.append(Record(ended - t0, ended - now, status, 9))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    t0 = time.perf_counter()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join(duration + 60)
    wall = max((r.ended for r in records), default=0.0)
    return records, wall, sum(backend_cpu)


def check(db_url: str, stock: int, sold: int) -> list[str]:
    """The baseline's own invariants: stock and order count agree, no balance below zero."""
    problems = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        (left,) = conn.execute(f"SELECT stock FROM {SCHEMA}.product WHERE id = 'hot'").fetchone()  # type: ignore[misc]
        (orders,) = conn.execute(f"SELECT count(*) FROM {SCHEMA}.orders").fetchone()  # type: ignore[misc]
        (unbalanced,) = conn.execute(
            f"SELECT count(*) FROM (SELECT entry_id FROM {SCHEMA}.posting GROUP BY entry_id "
            "HAVING sum(amount) <> 0) AS u"
        ).fetchone()  # type: ignore[misc]
    if left + orders != stock or orders != sold:
        problems.append(f"baseline: stock {left} + orders {orders} != {stock} (sold {sold})")
    if unbalanced:
        problems.append(f"baseline: {unbalanced} unbalanced entries")
    return problems
