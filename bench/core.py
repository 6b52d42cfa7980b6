"""The bench's shared pieces: the run's state (``Bench``), ``Missing``, CPU per request and request helpers.

The scenarios live in ``bench.purchases`` and ``bench.stripe_scenarios``; ``bench.scenarios`` names them all.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from bench.load import LoadResult, Req, run_load
from bench.stack import CpuMeter, Stack


class Missing(Exception):
    """The scenario's endpoint (or command) does not exist yet: reported, never faked."""


@dataclass
class Bench:
    stack: Stack
    quick: bool
    results: dict[str, Any] = field(default_factory=lambda: {"scenarios": {}})
    problems: list[str] = field(default_factory=list)
    # Products with stock whose sales the invariant check compares: id → initial stock.
    stocked: dict[str, int] = field(default_factory=dict)
    # Wallet purchases answered 201, per product.
    sold: dict[str, int] = field(default_factory=dict)
    # Where dj-stripe takes this deployment's webhooks (printed by setup_stripe).
    webhook_path: str | None = None

    def seconds(self, full: float, quick: float = 3.0) -> float:
        return quick if self.quick else full

    def figures(self, name: str) -> dict[str, Any]:
        return self.results["scenarios"].get(name, {})

    warmup_ok: int = 0
    warmup_5xx: int = 0

    def meter(self, groups: dict[str, list[int]]) -> CpuMeter:
        return CpuMeter(groups, admin_url=self.stack.admin_url, db_name=self.stack.db_name)

    def celery_settle(self, timeout: float = 90.0) -> bool:
        """Waits until the worker has nothing queued or in hand, so a scenario's CPU meter does not bill it
        for the tasks (receipts, order events) the previous scenario left behind. False when it timed out."""
        import redis

        client = redis.Redis.from_url(self.stack.redis)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not client.llen("celery") and not client.hlen("unacked"):
                return True
            time.sleep(0.2)
        return False

    def load(
        self, requests: list[Req], *, concurrency: int, duration: float, warmup: int = 0, **kwargs: Any
    ) -> tuple[LoadResult, dict[str, float]]:
        """Loads the server and meters CPU. ``warmup`` requests go first, unmeasured (every worker's
        first requests import modules and open connections); their 2xx count is ``self.warmup_ok``."""
        self.warmup_ok = 0
        if warmup:
            prefix = kwargs.get("idempotency_prefix")
            warm = run_load(
                self.stack.base_url,
                requests[::-1],
                concurrency=concurrency,
                duration=10,
                max_requests=warmup,
                workers=1,
                idempotency_prefix=f"warm-{prefix}" if prefix else None,
            )
            self.warmup_ok = sum(1 for r in warm.records if 200 <= r.status < 300)
            self.warmup_5xx = sum(1 for r in warm.records if r.status >= 500)
        self.celery_settle()
        meter = self.meter({"server": self.stack.server_pids(), "celery": self.stack.pids("celery")})
        result = run_load(self.stack.base_url, requests, concurrency=concurrency, duration=duration, **kwargs)
        cpu = meter.stop()
        cpu["generator_cpu_seconds"] = round(result.worker_cpu, 2)
        return result, per_request(cpu, len(result.records))


def per_request(cpu: dict[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request of each part, and the rate they allow on this machine's cores alone.

    On a machine shared with other work the measured rate says little; CPU per request does not
    depend on the neighbours, so ``cpu_bound_ceiling_per_s`` (cores / CPU per request, PostgreSQL
    included) tells what these cores could do if the bench had them to itself.
    """
    if not requests:
        return cpu
    total_ms = 0.0
    for part in ("server", "celery", "postgres", "generator"):
        seconds = cpu.get(f"{part}_cpu_seconds")
        if seconds is not None:
            ms = round(1000 * seconds / requests, 3)
            cpu[f"{part}_cpu_ms_per_request"] = ms
            total_ms += ms
    cpu["total_cpu_ms_per_request"] = round(total_ms, 3)
    cores = os.cpu_count() or 1
    cpu["cpu_bound_ceiling_per_s"] = round(cores * 1000 / total_ms, 1) if total_ms else None  # type: ignore[assignment]
    return cpu


def _has_route(path: str) -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _has_command(name: str) -> bool:
    from django.core.management import get_commands

    return name in get_commands()


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _auth(token: str, *, body: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def _ratio(value: float | None, base: float | None) -> float | None:
    if not value or not base:
        return None
    return round(value / base, 2)


def _no_5xx(bench: Bench, name: str, figures: dict[str, Any]) -> None:
    if figures.get("server_5xx"):
        bench.problems.append(f"{name}: {figures['server_5xx']} responses with a 5xx status")
    if bench.warmup_5xx:
        bench.problems.append(f"{name}: {bench.warmup_5xx} warm-up responses with a 5xx status")
        bench.warmup_5xx = 0
