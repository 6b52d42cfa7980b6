"""The scenarios up to the purchases: baselines, the catalog read, wallet purchases (spread, hot, code pools)
and the invariants checked after them."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from bench import baseline_sql, seed
from bench.core import Bench, Missing, _auth, _has_command, _has_route, _json, _no_5xx, _ratio, per_request
from bench.load import Req
from bench.report import summarize, summarize_load
from bench.stack import CpuMeter

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
    # Warmed over every body twice (each worker gets about half of the connections), so the window measures
    # cached hits as the target means them, not each process's first look at 500 keys.
    warmup = 2 * len(requests)
    result, cpu = bench.load(requests, concurrency=16, duration=bench.seconds(15), workers=2, warmup=warmup)
    figures = summarize_load(result)
    figures["cpu"] = cpu
    figures["warmup_requests"] = warmup
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


def purchase_codes(bench: Bench, catalog: Catalog) -> dict[str, Any]:
    """``purchase_spread`` on code-pool products: every purchase also takes one unique code (same statement)."""
    if not _has_route("/api/v1/orders") or not _has_route("/api/v1/products/x/codes"):
        raise Missing("POST /api/v1/orders or products/{id}/codes is not routed yet")
    per_product = 40 if bench.quick else 80
    pools = seed.code_pools(catalog.merchants, 5, price=500, codes=per_product, prefix="Codes")
    for product in pools:
        bench.stocked[product.id] = per_product
    buyers = seed.buyers("codes", 2000 if not bench.quick else 300, funds=100_000_000)
    requests = [_purchase(pools[(i * 7) % len(pools)].id, buyers[i % len(buyers)]) for i in range(len(buyers) * 3)]
    result, cpu = bench.load(
        requests, concurrency=12, duration=bench.seconds(20), workers=2, idempotency_prefix="codes", warmup=48
    )
    figures = summarize_load(result)
    figures["warmup_requests_ok"] = bench.warmup_ok
    bench.sold["purchase_codes"] = figures["ok"] + bench.warmup_ok
    figures["cpu"] = cpu
    figures["buyers"] = len(buyers)
    figures["products"] = len(pools)
    figures["codes_per_product"] = per_product
    spread = bench.figures("purchase_spread").get("ok_per_s")
    figures["ratio_to_purchase_spread"] = _ratio(figures["ok_per_s"], spread)
    figures["baseline"] = "purchase_spread"
    figures["target"] = {
        "ratio_to_purchase_spread_min": 0.8,
        "met": (figures["ratio_to_purchase_spread"] or 0) >= 0.8,
    }
    figures["codes"] = _codes_check(bench, [p.id for p in pools])
    _no_5xx(bench, "purchase_codes", figures)
    return figures


def _codes_check(bench: Bench, product_ids: list[str]) -> dict[str, Any]:
    """Each code sold once, held by a paid order's goods; every pool's stock equals its available codes."""
    from catalog.models import CodeStatus, Product, ProductCode
    from orders.models import Goods

    codes = ProductCode.objects.filter(product_id__in=product_ids)
    sold = codes.filter(status=CodeStatus.SOLD).count()
    goods = Goods.objects.filter(product_id__in=product_ids, code__isnull=False).count()
    available = dict(
        codes.filter(status=CodeStatus.AVAILABLE)
        .values_list("product_id")
        .annotate(n=Count("id"))
        .values_list("product_id", "n")
    )
    drifted = [
        p for p, stock in Product.objects.filter(pk__in=product_ids).values_list("pk", "stock")
        if stock != available.get(p, 0)
    ]  # fmt: skip
    if sold != goods:
        bench.problems.append(f"purchase_codes: {sold} codes sold but {goods} goods hold one")
    if drifted:
        bench.problems.append(f"purchase_codes: {len(drifted)} pools' stock differs from their available codes")
    return {"sold": sold, "goods_holding_a_code": goods, "pools_with_stock_drift": len(drifted)}


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
