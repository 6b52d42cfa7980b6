"""Memory as requests add up (issue 18, item 4): the resident set of every web worker and Celery process
after 50,000 and after 100,000 requests of the main API mix, and how much it grew in between.

It runs on the bench's own server, as production runs (config/serve.py): a worker is replaced only when
its memory passes ``WEB_MAX_RSS_MIB``, never after a count of requests, so what grows shows here. A
process replaced during the measurement is listed and the target is then not met.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import seed
from bench.core import Bench, Missing, _auth, _has_route, _json, _no_5xx
from bench.load import Req, run_load
from bench.purchases import Catalog
from bench.report import summarize_load
from bench.stack import _children
from config.serve import config_from_env

TARGET_GROWTH_PCT = 10.0
# Each half stops at its count or after this long, whichever comes first, so a slow machine still ends
# within the run's budget; a half that stopped short is reported (and the target is then not met).
HALF_SECONDS_MAX = 240.0


def _memory(pid: int) -> dict[str, int] | None:
    """VmRSS and RssAnon in KiB, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0])
    return {"rss_kib": fields.get("VmRSS", 0), "anon_kib": fields.get("RssAnon", 0)}


def _snapshot(groups: dict[str, list[int]]) -> dict[str, dict[int, dict[str, int]]]:
    shot: dict[str, dict[int, dict[str, int]]] = {}
    for name, pids in groups.items():
        shot[name] = {}
        for pid in pids:
            mem = _memory(pid)
            if mem is not None:
                shot[name][pid] = mem
    return shot


def _mix(bench: Bench, catalog: Catalog) -> list[Req]:
    """The main API requests, interleaved: catalog list and product, wallet, its transactions, orders,
    a wallet purchase, and a merchant's sales (one purchase in seven requests)."""
    from rest_framework_simplejwt.tokens import AccessToken

    buyers = seed.buyers("memory", 300 if not bench.quick else 60, funds=100_000_000)
    products = catalog.products
    merchants = [str(AccessToken.for_user(m)) for m in catalog.merchants[:50]]
    requests: list[Req] = []
    for i, buyer in enumerate(buyers * 3):
        product = products[(i * 7) % len(products)]
        headers = _auth(buyer.token)
        requests += [
            Req("GET", "/api/v1/products"),
            Req("GET", f"/api/v1/products/{product.id}"),
            Req("GET", "/api/v1/wallet", headers),
            Req("GET", "/api/v1/wallet/transactions", headers),
            Req(
                "POST",
                "/api/v1/orders",
                _auth(buyer.token, body=True),
                _json({"product": product.id, "quantity": 1, "payment_method": "wallet"}),
            ),
            Req("GET", "/api/v1/orders", headers),
            Req("GET", "/api/v1/merchant/sales", _auth(merchants[i % len(merchants)])),
        ]
    return requests


def memory_growth(bench: Bench, catalog: Catalog, ends_at: float | None = None) -> dict[str, Any]:
    """``ends_at`` (``time.monotonic()``): when the run's budget ends; each half then gets at most half of
    what is left of it (less a minute for the rest), so a slow machine reports a short half, not no figures."""
    for route in ("/api/v1/orders", "/api/v1/wallet/transactions", "/api/v1/merchant/sales", "/api/v1/products"):
        if not _has_route(route):
            raise Missing(f"{route} is not routed yet")
    half = 50_000 if not bench.quick else 400
    requests = _mix(bench, catalog)
    max_rss_mib = config_from_env().max_rss_mib
    server = bench.stack
    master = server.procs["web"].pid
    phases: dict[str, Any] = {}

    def groups() -> dict[str, list[int]]:
        return {"web": _children(master), "celery": bench.stack.pids("celery")}

    # Enough for every worker to have served each kind of request a few hundred times before the count starts.
    warm = run_load(
        server.base_url,
        requests,
        concurrency=16,
        duration=60,
        max_requests=3000 if not bench.quick else 100,
        workers=2,
        idempotency_prefix="memory-warm",
    )
    warm_figures = summarize_load(warm)
    _no_5xx(bench, "memory_growth warm-up", warm_figures)
    bench.celery_settle()
    start = _snapshot(groups())
    shots = {"after_warmup": start}
    for n, label in enumerate(("first_half", "second_half")):
        cap = HALF_SECONDS_MAX if not bench.quick else 60.0
        if ends_at is not None:
            cap = max(5.0, min(cap, (ends_at - time.monotonic() - 60) / (2 - n)))
        started = time.perf_counter()
        result = run_load(
            server.base_url,
            requests,
            concurrency=16,
            duration=cap,
            max_requests=half,
            workers=2,
            idempotency_prefix=f"memory-{label}",
        )
        figures = summarize_load(result)
        figures["wall_seconds"] = round(time.perf_counter() - started, 1)
        _no_5xx(bench, f"memory_growth {label}", figures)
        bench.celery_settle()
        phases[label] = figures
        total = sum(p["requests"] for p in phases.values())
        print(f"bench: memory_growth: {total:,} requests in, {figures['requests_per_s']} req/s", flush=True)
        shots[label] = _snapshot(groups())

    processes: list[dict[str, Any]] = []
    recycled: list[str] = []
    for group in ("web", "celery"):
        mid, end = shots["first_half"][group], shots["second_half"][group]
        for pid in sorted(set(start[group]) | set(mid) | set(end)):
            if pid not in start[group] or pid not in mid or pid not in end:
                recycled.append(f"{group} {pid}")
                continue
            growth = 100 * (end[pid]["rss_kib"] - mid[pid]["rss_kib"]) / max(1, mid[pid]["rss_kib"])
            processes.append(
                {
                    "group": group,
                    "pid": pid,
                    "rss_mib_after_warmup": round(start[group][pid]["rss_kib"] / 1024, 1),
                    "rss_mib_after_first_half": round(mid[pid]["rss_kib"] / 1024, 1),
                    "rss_mib_after_second_half": round(end[pid]["rss_kib"] / 1024, 1),
                    "anon_mib_after_second_half": round(end[pid]["anon_kib"] / 1024, 1),
                    "growth_pct": round(growth, 2),
                }
            )
    worst = max((p["growth_pct"] for p in processes), default=None)
    second = phases["second_half"]
    short = any(p["requests"] < half for p in phases.values())
    if short:
        print(f"bench: memory_growth stopped short of {half:,} requests a half (its time cap)", flush=True)
    if recycled:
        bench.problems.append(f"memory_growth: processes came and went during the measurement: {recycled}")
    return {
        "requests_per_half": half,
        "requests_after_first_half": phases["first_half"]["requests"],
        "requests_after_second_half": phases["first_half"]["requests"] + second["requests"],
        "stopped_short": short,
        "mix": "GET products, products/{id}, wallet, wallet/transactions, orders, merchant/sales; POST orders "
        "(wallet): one purchase in seven requests",
        "server": "the bench's (config/serve.py)",
        "web_max_rss_mib_production": max_rss_mib,
        "web_workers": bench.stack.workers,
        "processes": processes,
        "processes_replaced": recycled,
        "worst_growth_pct": worst,
        "phases": phases,
        "warmup": {"requests": warm_figures["requests"], "ok": warm_figures["ok"]},
        # The table shows the second half's load figures.
        "requests_per_s": second["requests_per_s"],
        "ok_per_s": second["ok_per_s"],
        "latency_ms": second["latency_ms"],
        "errors_by_status": second["errors_by_status"],
        "server_5xx": sum(p["server_5xx"] for p in phases.values()),
        # Unknown when a half stopped short: the growth between 50,000 and 100,000 was not measured.
        "met": None if short else worst is not None and worst <= TARGET_GROWTH_PCT and not recycled,
    }
