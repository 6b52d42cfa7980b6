"""The scenarios. Each returns its figures, or raises Missing when its endpoint has not landed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count

from bench import baseline_sql, seed
from bench.load import LoadResult, Req, run_load
from bench.report import summarize, summarize_load
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


# --- baselines ---------------------------------------------------------------


def baseline_sql_hot_row(bench: Bench) -> dict[str, Any]:
    clients = 8
    stock = 10_000_000
    baseline_sql.prepare(bench.stack.db_url, clients, stock)
    meter = CpuMeter({"generator": [os.getpid()]})
    records, wall, backend_cpu = baseline_sql.run(
        bench.stack.db_url, clients=clients, duration=bench.seconds(10), max_requests=10**9
    )
    cpu = meter.stop()
    cpu["postgres_cpu_seconds"] = round(backend_cpu, 2)
    cpu = per_request(cpu, len(records))
    figures = summarize(records, wall)
    figures["clients"] = clients
    figures["sql_queries_per_request"] = baseline_sql.STATEMENTS_PER_PURCHASE
    figures["cpu"] = cpu
    sold = sum(1 for r in records if r.status == 201)
    bench.problems.extend(baseline_sql.check(bench.stack.db_url, stock, sold))
    return figures


def baseline_django_ping(bench: Bench) -> dict[str, Any]:
    result, cpu = bench.load(
        [Req("GET", "/bench/ping")], concurrency=16, duration=bench.seconds(10), workers=2, warmup=64
    )
    figures = summarize_load(result)
    figures["cpu"] = cpu
    _no_5xx(bench, "baseline_django_ping", figures)
    return figures


# --- catalog -------------------------------------------------------------------


@dataclass
class Catalog:
    merchants: list[Any]
    products: list[Any]


def seed_catalog(bench: Bench) -> Catalog:
    merchants = seed.merchants("merchant", 200 if not bench.quick else 50)
    products = seed.products(merchants, 5, price=500, stock=None, prefix="Spread")
    return Catalog(merchants, products)


def catalog_read(bench: Bench, catalog: Catalog) -> dict[str, Any]:
    if not _has_route("/api/v1/products"):
        raise Missing("GET /api/v1/products is not routed yet")
    requests: list[Req] = []
    for product in catalog.products[:500]:
        requests.append(Req("GET", f"/api/v1/products/{product.id}"))
        requests.append(Req("GET", "/api/v1/products"))
    result, cpu = bench.load(requests, concurrency=16, duration=bench.seconds(15), workers=2, warmup=64)
    figures = summarize_load(result)
    figures["cpu"] = cpu
    figures["mix"] = "half GET products (first page), half GET products/{id} over 500 products, anonymous"
    ping = bench.figures("baseline_django_ping").get("requests_per_s")
    figures["ratio_to_baseline"] = _ratio(figures["ok_per_s"], ping)
    figures["baseline"] = "baseline_django_ping"
    figures["target"] = {"ratio_to_baseline_min": 0.8, "met": (figures["ratio_to_baseline"] or 0) >= 0.8}
    _no_5xx(bench, "catalog_read", figures)
    return figures


# --- wallet purchases ----------------------------------------------------------


def _purchase(product_id: str, buyer: seed.Buyer) -> Req:
    body = _json({"product": product_id, "quantity": 1, "payment_method": "wallet"})
    return Req("POST", "/api/v1/orders", _auth(buyer.token, body=True), body)


def purchase_spread(bench: Bench, catalog: Catalog) -> dict[str, Any]:
    if not _has_route("/api/v1/orders"):
        raise Missing("POST /api/v1/orders is not routed yet")
    buyers = seed.buyers("spread", 2000 if not bench.quick else 300, funds=100_000_000)
    products = catalog.products
    # Consecutive requests use different buyers and different merchants, so no two in flight share a row.
    requests = [
        _purchase(products[(i * 7) % len(products)].id, buyers[i % len(buyers)]) for i in range(len(buyers) * 3)
    ]
    result, cpu = bench.load(
        requests, concurrency=12, duration=bench.seconds(20), workers=2, idempotency_prefix="spread", warmup=48
    )
    figures = summarize_load(result)
    figures["warmup_requests_ok"] = bench.warmup_ok
    bench.sold["purchase_spread"] = figures["ok"] + bench.warmup_ok
    figures["cpu"] = cpu
    figures["buyers"] = len(buyers)
    figures["products"] = len(products)
    figures["merchants"] = len(catalog.merchants)
    base = bench.figures("baseline_sql_hot_row").get("ok_per_s")
    figures["ratio_to_baseline"] = _ratio(figures["ok_per_s"], base)
    figures["baseline"] = "baseline_sql_hot_row"
    figures["target"] = {
        "ok_per_s_min": 400,
        "p99_ms_max": 150,
        "met": figures["ok_per_s"] >= 400 and figures["latency_ms"]["p99"] < 150,
    }
    _no_5xx(bench, "purchase_spread", figures)
    return figures


def purchase_hot(bench: Bench) -> dict[str, Any]:
    if not _has_route("/api/v1/orders"):
        raise Missing("POST /api/v1/orders is not routed yet")
    merchant = seed.merchants("hot-merchant", 1)
    large_stock = 1_000_000
    (hot,) = seed.products(merchant, 1, price=300, stock=large_stock, prefix="Flash sale")
    (small,) = seed.products(merchant, 1, price=300, stock=20 if bench.quick else 200, prefix="Sell-out")
    bench.stocked[hot.id] = large_stock
    bench.stocked[small.id] = small.stock
    buyers = seed.buyers("hot", 1000 if not bench.quick else 100, funds=100_000_000)

    requests = [_purchase(hot.id, b) for b in buyers]
    result, cpu = bench.load(
        requests, concurrency=32, duration=bench.seconds(15), workers=2, idempotency_prefix="hot", warmup=64
    )
    figures = summarize_load(result)
    figures["cpu"] = cpu
    figures["buyers"] = len(buyers)
    figures["concurrency"] = 32
    figures["warmup_requests_ok"] = bench.warmup_ok
    bench.sold[hot.id] = figures["ok"] + bench.warmup_ok

    # The sell-out: three times the stock, every request after the last unit must be a clean 409.
    tries = small.stock * 3
    sell = [_purchase(small.id, b) for b in buyers]
    sellout, sell_cpu = bench.load(
        sell, concurrency=32, duration=60, max_requests=tries, workers=2, idempotency_prefix="sellout"
    )
    ordered = sorted(sellout.records, key=lambda r: r.ended)
    sold = sum(1 for r in ordered if r.status == 201)
    refused = [r for r in ordered if r.status != 201]
    unclean = [r for r in refused if not (r.status == 409 and r.code == "out_of_stock")]
    bench.sold[small.id] = sold
    figures["sellout"] = {
        **summarize(sellout.records, sellout.wall, ok_statuses=(201,)),
        "stock": small.stock,
        "attempts": len(ordered),
        "sold": sold,
        "clean_409_out_of_stock": len(refused) - len(unclean),
        "other_refusals": len(unclean),
        "cpu": sell_cpu,
    }
    if sold != small.stock:
        bench.problems.append(f"purchase_hot sell-out: sold {sold} of a stock of {small.stock}")
    if unclean:
        bench.problems.append(
            f"purchase_hot sell-out: {len(unclean)} refusals were not 409 out_of_stock, "
            f"e.g. {unclean[0].status} {unclean[0].code}"
        )
    base = bench.figures("baseline_sql_hot_row").get("ok_per_s")
    figures["ratio_to_baseline"] = _ratio(figures["ok_per_s"], base)
    figures["baseline"] = "baseline_sql_hot_row"
    figures["target"] = {"ok_per_s_min": 300, "met": figures["ok_per_s"] >= 300}
    _no_5xx(bench, "purchase_hot", figures)
    _no_5xx(bench, "purchase_hot sell-out", figures["sellout"])
    return figures


# --- invariants after the purchases --------------------------------------------


def check_purchases(bench: Bench) -> dict[str, Any]:
    """Stock and order counts agree, nothing oversold, no negative balance, ledger_verify passes."""
    from django.db.models import Count, Sum

    from catalog.models import Product
    from orders.models import Order
    from wallets.models import Account, AccountKind

    report: dict[str, Any] = {}
    for product_id, initial in bench.stocked.items():
        product = Product.objects.get(pk=product_id)
        counted = Order.objects.filter(product_id=product_id).exclude(status__in=("canceled", "failed"))
        taken = counted.aggregate(n=Sum("quantity"))["n"] or 0
        report[product_id] = {"initial": initial, "left": product.stock, "orders_quantity": taken}
        if product.stock is None or product.stock < 0 or product.stock + taken != initial:
            bench.problems.append(f"{product_id}: stock {product.stock} + ordered {taken} != initial {initial}")
        if product_id in bench.sold and taken != bench.sold[product_id]:
            bench.problems.append(f"{product_id}: {taken} ordered but {bench.sold[product_id]} answered 201")
    paid = Order.objects.filter(payment_method="wallet", status="paid").aggregate(n=Count("id"))["n"]
    answered = sum(bench.sold.values())
    report["wallet_orders_paid"] = paid
    report["wallet_purchases_answered_201"] = answered
    if paid != answered:
        bench.problems.append(f"{paid} wallet orders are paid but {answered} purchases were answered 201")
    negative = Account.objects.filter(kind__in=(AccountKind.CUSTOMER, AccountKind.MERCHANT), balance__lt=0).count()
    report["negative_balances"] = negative
    if negative:
        bench.problems.append(f"{negative} wallets have a negative balance")
    report["ledger_verify"] = ledger_verify_in_process()
    if not report["ledger_verify"]["ok"]:
        bench.problems.append("ledger_verify failed after the purchases: " + report["ledger_verify"]["output"][-500:])
    return report


def ledger_verify_in_process() -> dict[str, Any]:
    """The same command, run in this process (no second Django start-up)."""
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = io.StringIO()
    started = time.perf_counter()
    try:
        call_command("ledger_verify", progress="never", stdout=out, stderr=out)
        ok = True
    except CommandError as exc:
        out.write(str(exc))
        ok = False
    return {"ok": ok, "seconds": round(time.perf_counter() - started, 2), "output": out.getvalue()[-2000:]}


def run_ledger_verify(bench: Bench) -> dict[str, Any]:
    if not _has_command("ledger_verify"):
        return {"ok": True, "missing": True, "output": "manage.py ledger_verify does not exist yet"}
    started = time.perf_counter()
    done = bench.stack.manage("ledger_verify", "--progress", "never", timeout=300)
    seconds = time.perf_counter() - started
    output = (done.stdout + done.stderr).decode(errors="replace")
    import re

    checks = re.search(r"checks passed in ([0-9.]+) s", output)
    return {
        "ok": done.returncode == 0,
        "seconds": round(seconds, 2),
        "checks_seconds": float(checks.group(1)) if checks else None,
        "exit": done.returncode,
        "output": output[-2000:],
    }


# --- ledger_verify over a million postings -------------------------------------


def ledger_verify_1m(bench: Bench) -> dict[str, Any]:
    if not _has_command("ledger_verify"):
        raise Missing("manage.py ledger_verify does not exist yet")
    from bench import ledger_gen

    target = 100_000 if bench.quick else 1_000_000
    generated = ledger_gen.generate(target)
    # The command's own start-up (Django, settings) is part of what an operator waits for; measured apart too.
    started = time.perf_counter()
    bench.stack.manage("help", timeout=120)
    startup_s = time.perf_counter() - started
    verify = run_ledger_verify(bench)
    if not verify["ok"]:
        bench.problems.append("ledger_verify failed on the generated ledger: " + verify["output"][-500:])
    return {
        "status": "ok" if verify["ok"] else "failed",
        **generated,
        # The whole command as an operator runs it (Django start-up included) ...
        "seconds": verify["seconds"],
        # ... and the six set-based checks alone, as the command reports them.
        "checks_seconds": verify.get("checks_seconds"),
        "django_startup_seconds": round(startup_s, 2),
        "exit": verify["exit"],
        "output": verify["output"],
        "target": {"seconds_max": 5, "met": verify["ok"] and verify["seconds"] <= 5},
    }


SCENARIOS: tuple[tuple[str, Callable[..., dict[str, Any]]], ...] = ()


# --- card purchases against the local fake Stripe ------------------------------


def card_purchase(bench: Bench, catalog: Catalog | None) -> dict[str, Any]:
    if not _has_route("/api/v1/orders") or not _has_route("/api/v1/payment-methods"):
        raise Missing("POST /api/v1/orders or /api/v1/payment-methods is not routed yet")
    if not bench.stack.procs.get("fake_stripe"):
        raise Missing("scripts/fake_stripe.py does not exist yet")
    if catalog is None:
        catalog = seed_catalog(bench)
    buyers = seed.buyers("card", 60 if not bench.quick else 12, funds=1)
    # Each buyer saves a card through the API (customer + attach at the fake), which becomes the default.
    attach = [
        Req("POST", "/api/v1/payment-methods", _auth(b.token, body=True), _json({"payment_method": "pm_card_visa"}))
        for b in buyers
    ]
    saved, _ = bench.load(attach, concurrency=4, duration=120, max_requests=len(attach), workers=1)
    attached = sum(1 for r in saved.records if r.status == 201)
    if attached != len(buyers):
        codes = sorted({f"{r.status}:{r.code}" for r in saved.records if r.status != 201})
        raise RuntimeError(f"only {attached} of {len(buyers)} cards could be saved: {codes}")
    products = catalog.products
    requests = [
        Req(
            "POST",
            "/api/v1/orders",
            _auth(b.token, body=True),
            _json({"product": products[(i * 11) % len(products)].id, "quantity": 1, "payment_method": "card"}),
        )
        for i, b in enumerate(buyers)
    ]
    result, cpu = bench.load(
        requests, concurrency=8, duration=bench.seconds(15), workers=1, idempotency_prefix="card", warmup=8
    )
    figures = summarize_load(result)
    figures["warmup_requests_ok"] = bench.warmup_ok
    figures["cpu"] = cpu
    figures["buyers"] = len(buyers)
    figures["card_saving"] = summarize(saved.records, saved.wall, ok_statuses=(201,))
    from orders.models import Order

    paid = Order.objects.filter(payment_method="card", status="paid").count()
    figures["card_orders_paid"] = paid
    base = bench.figures("baseline_sql_hot_row").get("ok_per_s")
    figures["ratio_to_baseline"] = _ratio(figures["ok_per_s"], base)
    figures["baseline"] = "baseline_sql_hot_row"
    if paid != figures["ok"] + bench.warmup_ok:
        bench.problems.append(f"card_purchase: {figures['ok']} answered 201 but {paid} card orders are paid")
    _no_5xx(bench, "card_purchase", figures)
    return figures


# --- webhook ingestion -----------------------------------------------------------


def _stripe_signature(secret: str, payload: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` header exactly as Stripe computes it (HMAC-SHA256 of ``t.payload``)."""
    import hashlib
    import hmac

    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _seed_processing_card_orders(bench: Bench, catalog: Catalog, count: int) -> list[tuple[str, str, int]]:
    """Card orders whose payment is ``processing`` at Stripe: (payment id, intent id, amount) each."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from config.money import basis_points
    from orders.models import Order
    from payments.models import Payment

    buyers = seed.buyers("hook", max(1, count // 10), funds=1)
    from accounts.models import User

    users = {u.id: u for u in User.objects.filter(id__in=[b.user_id for b in buyers])}
    now = timezone.now()
    payments = []
    orders = []
    for i in range(count):
        buyer = users[buyers[i % len(buyers)].user_id]
        product = catalog.products[i % len(catalog.products)]
        amount = product.price
        fee = basis_points(amount, settings.PLATFORM_FEE_BPS)
        payment = Payment(
            user=buyer,
            kind="order",
            method="card",
            amount=amount,
            currency=product.currency,
            status="processing",
            stripe_payment_intent_id=f"pi_bench{i:08d}{now.strftime('%H%M%S')}",
            created_at=now,
            updated_at=now,
        )
        payments.append(payment)
        orders.append(
            Order(
                buyer=buyer,
                merchant_id=product.merchant_id,
                product=product,
                quantity=1,
                unit_price=amount,
                amount=amount,
                currency=product.currency,
                fee=fee,
                merchant_net=amount - fee,
                payment_method="card",
                status="pending",
                payment=payment,
                reserved_until=now + timedelta(hours=1),
                created_at=now,
                updated_at=now,
            )
        )
    with transaction.atomic():
        Payment.objects.bulk_create(payments, batch_size=1000)
        Order.objects.bulk_create(orders, batch_size=1000)
    return [(p.id, str(p.stripe_payment_intent_id), p.amount) for p in payments]


def _event(event_id: str, intent_id: str, payment_id: str, amount: int, currency: str, created: int) -> bytes:
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": currency,
        "status": "succeeded",
        "customer": None,
        "payment_method": None,
        "latest_charge": "ch_" + intent_id[3:],
        "last_payment_error": None,
        "metadata": {"payment_id": payment_id, "kind": "order"},
        "livemode": False,
        "created": created,
    }
    return _json(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": "payment_intent.succeeded",
            "data": {"object": intent},
        }
    )


def webhook_ingest(bench: Bench, catalog: Catalog | None) -> dict[str, Any]:
    path = bench.webhook_path
    if not path:
        raise Missing("manage.py setup_stripe (or the fake Stripe server) does not exist yet")
    if not path.startswith("/stripe/"):
        raise RuntimeError(f"setup_stripe printed {path!r}, not a webhook path")
    if catalog is None:
        catalog = seed_catalog(bench)

    from payments.models import Payment

    count = 6000 if not bench.quick else 300
    payments = _seed_processing_card_orders(bench, catalog, count)
    created = int(time.time())
    secret = bench.stack.webhook_secret
    requests: list[Req] = []
    payment_of: list[str] = []  # the payment each request's event settles
    for i, (payment_id, intent_id, amount) in enumerate(payments):
        body = _event(f"evt_bench{created}{i:08d}", intent_id, payment_id, amount, "usd", created)
        headers = {"Content-Type": "application/json", "Stripe-Signature": _stripe_signature(secret, body, created)}
        requests.append(Req("POST", path, headers, body))
        payment_of.append(payment_id)
        if i % 5 == 0:
            # A redelivery, with a later signature timestamp, as Stripe retries.
            later = created + 1
            headers = {"Content-Type": "application/json", "Stripe-Signature": _stripe_signature(secret, body, later)}
            requests.append(Req("POST", path, headers, body))
            payment_of.append(payment_id)
    # Duplicates arrive apart from their first delivery: all firsts of a stretch, then its redeliveries.
    order = sorted(range(len(requests)), key=lambda j: (j // 50, j % 2, j))
    requests = [requests[j] for j in order]
    payment_of = [payment_of[j] for j in order]

    # Warm-up, unmeasured: the last deliveries, so each worker has imported the webhook path.
    warm_count = 48
    warm = run_load(
        bench.stack.base_url, requests[-warm_count:], concurrency=16, duration=20, max_requests=warm_count, workers=1
    )
    warm_delivered = {payment_of[len(requests) - warm_count + r.index] for r in warm.records if r.status == 200}
    bench.warmup_5xx = sum(1 for r in warm.records if r.status >= 500)
    requests = requests[:-warm_count]

    started = time.perf_counter()
    result, cpu = bench.load(
        requests, concurrency=16, duration=bench.seconds(25, 5), max_requests=len(requests), workers=2
    )
    accepted_s = time.perf_counter() - started
    # Bounded in time as well as count: only the events whose delivery was accepted must be applied.
    delivered = sorted({payment_of[r.index] for r in result.records if r.status == 200} | warm_delivered)
    expected = len(delivered)
    deadline = time.perf_counter() + (120 if not bench.quick else 45)
    applied = 0
    while time.perf_counter() < deadline:
        applied = Payment.objects.filter(id__in=delivered, status="succeeded").count()
        if applied >= expected:
            break
        time.sleep(0.25)
    applied_s = time.perf_counter() - started
    figures = summarize_load(result)
    figures["cpu"] = cpu
    figures["events_prepared"] = count
    figures["deliveries"] = len(result.records)
    figures["events_delivered"] = expected
    # Every fifth event is delivered twice.
    figures["duplicate_deliveries_accepted"] = sum(1 for r in result.records if r.status == 200) - len(
        {payment_of[r.index] for r in result.records if r.status == 200}
    )
    figures["accepted_per_s"] = figures["ok_per_s"]
    # Accepting an event is one signed POST and one insert: the framework's ceiling is its yardstick.
    figures["ratio_to_baseline"] = _ratio(
        figures["ok_per_s"], bench.figures("baseline_django_ping").get("requests_per_s")
    )
    figures["baseline"] = "baseline_django_ping"
    figures["applied"] = applied
    figures["seconds_until_all_applied"] = round(applied_s, 2) if applied >= expected else None
    figures["applied_per_s"] = round(applied / applied_s, 1)
    figures["load_seconds_wall"] = round(accepted_s, 2)
    figures.update(_webhook_applied_once(bench, delivered, [p[0] for p in payments]))
    if applied < expected:
        bench.problems.append(f"webhook_ingest: {applied} of {expected} delivered events applied within the wait")
    figures["target"] = {
        "accepted_per_s_min": 300,
        "met": figures["accepted_per_s"] >= 300 and applied >= expected and figures["applied_once"],
    }
    _no_5xx(bench, "webhook_ingest", figures)
    return figures


def _webhook_applied_once(bench: Bench, delivered: list[str], seeded: list[str]) -> dict[str, Any]:
    """Each delivered event applied once (its order paid, one purchase entry), undelivered ones not at all."""
    from orders.models import Order
    from orders.services.terms import purchase_key
    from payments.models import StripeEvent
    from wallets.models import Entry

    order_ids = list(Order.objects.filter(payment_id__in=seeded).values_list("id", flat=True))
    entries = Entry.objects.filter(idempotency_key__in=[purchase_key(o) for o in order_ids]).count()
    paid = Order.objects.filter(id__in=order_ids, status="paid").count()
    events = StripeEvent.objects.filter(id__startswith="evt_bench").values("status").annotate(n=Count("id"))
    by_status = {row["status"]: row["n"] for row in events}
    count = len(delivered)
    once = entries == paid == count and sum(by_status.values()) == count
    if not once:
        bench.problems.append(
            f"webhook_ingest: {count} events delivered, {paid} orders paid, {entries} purchase entries, "
            f"{sum(by_status.values())} events recorded"
        )
    return {
        "orders_paid": paid,
        "purchase_entries": entries,
        "stripe_events_by_status": by_status,
        "applied_once": once,
    }
