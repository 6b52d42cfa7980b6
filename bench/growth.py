"""How cost grows with the work (issue 18, item 4): the purchase rate at 1 to 128 clients, cursor pages
(first and deep) over 1 million orders and 10 million postings, and ``ledger_verify`` over those postings.

The large data set is built once per migration set (``bench.ledger_gen.growth_fill``) into a database of
its own that is kept between runs and opened read-only; its build time is reported apart, like the
migrated template's. A second web server, configured as the first but on that database, serves the pages.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql as pgsql

from bench import ledger_gen, seed
from bench.core import Bench, Missing, _auth, _has_command, _has_route, _json, _no_5xx
from bench.load import Req, run_load
from bench.purchases import Catalog
from bench.report import percentile, summarize, summarize_load
from bench.stack import VAR, Stack, _with_path

SWEEP_LEVELS = (1, 8, 32, 128)
GROWTH_LOCK = "bench growth data"


# --- the kept growth database -------------------------------------------------------------------------


def growth_shape(quick: bool) -> ledger_gen.GrowthShape:
    return ledger_gen.GROWTH_QUICK if quick else ledger_gen.GROWTH_FULL


def growth_database(stack: Stack, quick: bool, fingerprint: str) -> tuple[str, float, dict[str, Any]]:
    """The kept database with the growth set, built first if this migration set has none; (name, seconds
    spent building it now: 0 when it was there, the seconds each step of its build took whenever it was
    built). Waits for another run building it at the same time. ``fingerprint`` is the migration set's the
    bench database was just made from (``Stack.prepare_database``), which the new set is copied from."""
    from django.conf import settings

    shape = growth_shape(quick)
    keep = f"bench_v{ledger_gen.GROWTH_VERSION}_{fingerprint}"
    name = f"bench_big_{shape.tag}_{keep}"
    building = f"{name}_building"
    started = time.perf_counter()
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [GROWTH_LOCK])
        existing = [
            str(row[0])
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_big\\_%' ORDER BY oid DESC"
            )
        ]
        if name in existing:
            return name, 0.0, _build_steps(conn, name)
        # A build that died goes, and so do the sets of older migration sets or generator versions but the
        # newest other one of this size (two working trees on one server then need not rebuild in turn).
        others = [d for d in existing if d.startswith(f"bench_big_{shape.tag}_") and not d.endswith("_building")]
        for old in existing:
            if old.endswith("_building") or (old in others and old != others[0]):
                conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        print(
            f"bench: building the growth data set {name} ({shape.orders:,} orders, {shape.postings:,} postings);"
            " once per migration set, not part of the run's time",
            flush=True,
        )
        # The bench database is still the migrated template's copy (nothing has connected to it yet).
        conn.execute(f'CREATE DATABASE "{building}" TEMPLATE "{stack.db_name}"')
        try:
            steps = ledger_gen.growth_fill(_with_path(stack.db_url, f"/{building}"), shape, settings.PLATFORM_CURRENCY)
            note = json.dumps({"build_steps_s": steps})
            comment = pgsql.SQL("COMMENT ON DATABASE {} IS {}")
            conn.execute(comment.format(pgsql.Identifier(building), pgsql.Literal(note)))
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        except BaseException:
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            raise
        # Read-only for every session: a page served from it must not write, and the set stays as built.
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        return name, round(time.perf_counter() - started, 1), steps


def _build_steps(conn: psycopg.Connection[Any], name: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
    ).fetchone()
    try:
        return dict(json.loads(row[0])["build_steps_s"]) if row and row[0] else {}
    except (ValueError, KeyError, TypeError):
        return {}


@dataclass
class SideServer(Stack):
    """Another web server, configured as the bench's (config/serve.py, the same workers, secret key and
    Redis), on a database of its choosing; logs under var/bench/<label>-*."""

    label: str = "side"

    def _spawn(self, name: str, argv: list[str]) -> Any:
        import subprocess

        from bench.stack import ROOT, _die_with_parent

        log = (VAR / f"{self.label}-{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self.procs[name] = proc
        return proc


def side_server(bench: Bench, *, label: str, database: str | None = None) -> SideServer:
    main = bench.stack
    side = SideServer(
        quick=main.quick,
        workers=main.workers,
        threads=main.threads,
        log_level=main.log_level,
        secret_key=main.secret_key,
        webhook_secret=main.webhook_secret,
        label=label,
    )
    side.stripe_port = main.stripe_port
    side.server_db_url = main.server_db_url
    if database:
        side.server_db_url = _with_path(main.db_url, f"/{database}")
    return side


# --- the purchase rate at 1, 8, 32 and 128 clients -----------------------------------------------------


def purchase_concurrency(bench: Bench, catalog: Catalog) -> dict[str, Any]:
    """purchase_spread's requests (wallet purchases over many products, no two in flight on one buyer or
    merchant) at each number of clients in turn."""
    if not _has_route("/api/v1/orders"):
        raise Missing("POST /api/v1/orders is not routed yet")
    buyers = seed.buyers("sweep", 2000 if not bench.quick else 300, funds=100_000_000)
    products = catalog.products
    body = {"quantity": 1, "payment_method": "wallet"}
    requests = [
        Req(
            "POST",
            "/api/v1/orders",
            _auth(buyers[i % len(buyers)].token, body=True),
            _json({"product": products[(i * 7) % len(products)].id, **body}),
        )
        for i in range(len(buyers) * 3)
    ]
    levels: dict[str, Any] = {}
    answered = 0
    for n, clients in enumerate(SWEEP_LEVELS):
        result, cpu = bench.load(
            requests,
            concurrency=clients,
            duration=bench.seconds(8, 1.0),
            workers=1 if clients < 8 else 2,
            idempotency_prefix=f"sweep{clients}",
            warmup=48 if n == 0 else 0,
        )
        answered += bench.warmup_ok
        figures = summarize_load(result)
        answered += figures["ok"]
        figures["cpu"] = cpu
        figures["clients"] = clients
        _no_5xx(bench, f"purchase_concurrency at {clients} clients", figures)
        levels[str(clients)] = figures
    from orders.models import Order, OrderStatus

    paid = Order.objects.filter(buyer_id__in=[b.user_id for b in buyers], status=OrderStatus.PAID).count()
    if paid != answered:
        bench.problems.append(f"purchase_concurrency: {answered} purchases answered 201 but {paid} orders are paid")
    best = max(levels.values(), key=lambda f: f["ok_per_s"])
    return {
        "levels": levels,
        "buyers": len(buyers),
        "products": len(products),
        "seconds_per_level": bench.seconds(8, 1.0),
        "orders_paid": paid,
        "purchases_answered_201": answered,
        "best_clients": best["clients"],
        # How much of the best rate is left with the most clients: 1.0 means contention costs nothing.
        "rate_at_most_clients_to_best": (
            round(levels[str(SWEEP_LEVELS[-1])]["ok_per_s"] / best["ok_per_s"], 2) if best["ok_per_s"] else None
        ),
        # The table's row shows the best level; each level has a row of its own under it.
        "ok_per_s": best["ok_per_s"],
        "requests_per_s": best["requests_per_s"],
        "latency_ms": best["latency_ms"],
        "errors_by_status": {
            k: sum(f["errors_by_status"].get(k, 0) for f in levels.values())
            for k in sorted({k for f in levels.values() for k in f["errors_by_status"]})
        },
        "server_5xx": sum(f["server_5xx"] for f in levels.values()),
        "rows": {f"{clients} clients": levels[str(clients)] for clients in SWEEP_LEVELS},
    }


# --- first and deep cursor pages over the growth set ----------------------------------------------------


def _cursor_path(path: str, position: str, limit: int = 20) -> str:
    """The ``?cursor=`` the API itself hands out for the page after the item ``position`` (newest first)."""
    from rest_framework.pagination import Cursor

    from config.pagination import CursorPagination

    pager = CursorPagination()
    pager.base_url = f"{path}?limit={limit}"
    return pager.encode_cursor(Cursor(offset=0, reverse=False, position=position))


def _get(base_url: str, path: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _ids_at(db_url: str, sql: str, owner: str, ranks: list[int]) -> dict[int, str]:
    """Ids at 1-based ``ranks`` of one owner's list, newest first."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            f"SELECT rn, id FROM (SELECT id, row_number() OVER (ORDER BY id DESC) AS rn FROM {sql}) ranked"
            " WHERE rn = ANY(%s)",
            [owner, ranks],
        ).fetchall()
    return {int(rn): str(i) for rn, i in rows}


def cursor_pages(bench: Bench) -> dict[str, Any]:
    for route in ("/api/v1/wallet/transactions", "/api/v1/orders", "/api/v1/merchant/sales"):
        if not _has_route(route):
            raise Missing(f"GET {route} is not routed yet")
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import Role, User

    shape = growth_shape(bench.quick)
    database = bench.results.get("setup", {}).get("growth_database")
    if not database:
        raise RuntimeError("the growth data set was not prepared")
    counts = ledger_gen.growth_counts(shape)
    customer_id, wallet_id = ledger_gen.growth_customer(0)
    merchant_id, _ = ledger_gen.growth_merchant(0)
    customer = str(AccessToken.for_user(User(id=customer_id, role=Role.CUSTOMER, password="!")))
    merchant = str(AccessToken.for_user(User(id=merchant_id, role=Role.MERCHANT, password="!")))
    # (path, token, the list's rows by owner, its owner, how long it is)
    lists = (
        ("/api/v1/wallet/transactions", customer, "wallets_posting WHERE account_id = %s", wallet_id,
         counts["heavy_customer_purchases"] + 1),
        ("/api/v1/orders", customer, "orders_order WHERE buyer_id = %s", customer_id,
         counts["heavy_customer_orders"]),
        ("/api/v1/merchant/sales", merchant, "orders_order WHERE merchant_id = %s", merchant_id,
         counts["heavy_merchant_orders"]),
    )  # fmt: skip
    db_url = _with_path(bench.stack.db_url, f"/{database}")
    side = side_server(bench, label="growth", database=database)
    if bench.quick:
        side.workers = 1  # pages are read one at a time: one worker serves them alike, and starts sooner
    cursors = 8 if bench.quick else 64
    limit = 20
    try:
        side.start_web()
        prepared = [
            _deep_cursors(side, db_url, path, token, sql, owner, length, cursors=cursors, limit=limit)
            for path, token, sql, owner, length in lists
        ]
        # One run on one connection: each list's first page and one of its deep pages in turn, every
        # list alike, so first and deep pages meet the same conditions. Request i is list (i // 2) % 3's,
        # a first page when i is even.
        requests: list[Req] = []
        for k in range(cursors):
            for (path, token, *_), deep in zip(lists, prepared, strict=True):
                requests.append(Req("GET", f"{path}?limit={limit}", _auth(token)))
                requests.append(Req("GET", deep[k], _auth(token)))
        run_load(side.base_url, requests, concurrency=1, duration=20, max_requests=len(requests), workers=1)
        result = run_load(side.base_url, requests, concurrency=1, duration=bench.seconds(15, 1.5), workers=1)
    finally:
        side.stop()
    pages: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    for n, (path, _, _, _, length) in enumerate(lists):
        records = [r for r in result.records if (r.index // 2) % len(lists) == n]
        figures: dict[str, Any] = {}
        p50: dict[str, float] = {}
        for kind, even in (("first", 0), ("deep", 1)):
            mine = [r for r in records if r.index % 2 == even]
            figures[kind] = summarize(mine, result.wall, ok_statuses=(200,))
            p50[kind] = percentile(sorted(r.latency for r in mine), 50)
            _no_5xx(bench, f"cursor_pages {path} {kind}", figures[kind])
        ratio = round(p50["deep"] / p50["first"], 2) if p50["first"] else None
        p99 = figures["first"]["latency_ms"]["p99"]
        figures["deep"]["deep_to_first_p50"] = ratio
        pages[path] = {
            **figures,
            "list_length": length,
            "deep_pages_from_item": [int(length * 0.80), int(length * 0.95)],
            "deep_cursors": cursors,
            "cursors_checked": True,
            "deep_to_first_p50": ratio,
            "deep_to_first_p99": round(figures["deep"]["latency_ms"]["p99"] / p99, 2) if p99 else None,
            "met": ratio is not None and ratio <= 2.0 and figures["deep"]["ok"] > 0,
        }
        for kind in ("first", "deep"):
            rows[f"{path.removeprefix('/api/v1/')} {kind}"] = figures[kind]
    worst = max((p["deep_to_first_p50"] or 0 for p in pages.values()), default=None)
    return {
        "database": database,
        "orders_in_database": shape.orders,
        "postings_in_database": shape.postings,
        "page_size": limit,
        "server_workers": side.workers,
        "lists": pages,
        "worst_deep_to_first_p50": worst,
        "met": all(p["met"] for p in pages.values()),
        "rows": rows,
    }


def _deep_cursors(
    side: SideServer, db_url: str, path: str, token: str, sql: str, owner: str, length: int, *, cursors: int, limit: int
) -> list[str]:
    """``cursors`` paths to deep pages of one list, checked against the API's own paging first.

    Deep pages start between 80 % and 95 % down the list; each cursor is the one the API hands out after
    the item just before it (its position is that item's id). Following ``next`` from the first page must
    go on where it left off, and a built cursor's page must start at the item after its position.
    """
    starts = [int(length * (0.80 + 0.15 * k / max(1, cursors - 1))) for k in range(cursors)]
    ids = _ids_at(db_url, sql, owner, [*starts, *(s + 1 for s in starts)])
    if not all(s in ids and s + 1 in ids for s in starts):
        raise RuntimeError(f"{path}: the growth data has fewer rows than expected ({length})")
    deep = [_cursor_path(path, ids[s], limit) for s in starts]
    first = _get(side.base_url, f"{path}?limit={limit}", token)
    seen = [r["id"] for r in first["results"]]
    url = first["next"]
    for _ in range(3):
        page = _get(side.base_url, _relative(url), token)
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    if len(seen) != 4 * limit or seen != sorted(seen, reverse=True) or len(set(seen)) != len(seen):
        raise RuntimeError(f"{path}: following next did not page on newest first: {seen[:3]}…")
    for start, cursor in ((starts[0], deep[0]), (starts[-1], deep[-1])):
        got = [r["id"] for r in _get(side.base_url, cursor, token)["results"]]
        if got[:1] != [ids[start + 1]] or len(got) != limit or got != sorted(got, reverse=True):
            raise RuntimeError(f"{path}: the deep cursor after item {start} did not start at {ids[start + 1]}")
    return deep


# --- ledger_verify over the growth set ------------------------------------------------------------------


def ledger_verify_10m(bench: Bench) -> dict[str, Any]:
    if not _has_command("ledger_verify"):
        raise Missing("manage.py ledger_verify does not exist yet")
    import re

    shape = growth_shape(bench.quick)
    database = bench.results.get("setup", {}).get("growth_database")
    if not database:
        raise RuntimeError("the growth data set was not prepared")
    side = side_server(bench, label="growth", database=database)
    started = time.perf_counter()
    done = side.manage("ledger_verify", "--progress", "never", timeout=600)
    seconds = round(time.perf_counter() - started, 2)
    output = (done.stdout + done.stderr).decode(errors="replace")
    checks = re.search(r"checks passed in ([0-9.]+) s", output)
    size = re.search(r"([0-9,]+) postings", output)
    postings = int(size.group(1).replace(",", "")) if size else shape.postings
    checks_s = float(checks.group(1)) if checks else None
    ok = done.returncode == 0
    if not ok:
        bench.problems.append("ledger_verify failed on the growth data set: " + output[-500:])
    figures: dict[str, Any] = {
        "status": "ok" if ok else "failed",
        "database": database,
        "ledger_postings": postings,
        "seconds": seconds,
        "checks_seconds": checks_s,
        "postings_per_s": round(postings / checks_s) if checks_s else None,
        "exit": done.returncode,
        "output": output[-2000:],
    }
    small = bench.figures("ledger_verify_1m")
    if small.get("checks_seconds") and small.get("ledger_postings") and checks_s:
        n1, t1 = small["ledger_postings"], small["checks_seconds"]
        figures["ledger_verify_1m_postings_per_s"] = round(n1 / t1)
        # Time ∝ postings^k: k = 1 is linear; above 1.15 the cost per posting grows with the ledger.
        k = math.log(checks_s / t1) / math.log(postings / n1) if postings > n1 and t1 > 0 else None
        figures["growth_exponent"] = round(k, 2) if k is not None else None
        figures["linear"] = k is not None and k <= 1.15
    if bench.quick:
        # A quick run's set is small: the target is judged on the time this rate would take over the full set.
        rate = figures["postings_per_s"]
        figures["seconds_at_full_size"] = round(ledger_gen.GROWTH_FULL.postings / rate, 1) if rate else None
        figures["seconds_at_full_size_is"] = "projected from this rate (quick run)"
    else:
        figures["seconds_at_full_size"] = seconds
        figures["seconds_at_full_size_is"] = "measured"
    return figures
