"""The scenarios after the purchases: ledger_verify over a million postings, card purchases against the local
fake Stripe, and Stripe webhook ingestion."""

from __future__ import annotations

import time
from typing import Any

from django.db.models import Count

from bench import seed
from bench.core import Bench, Missing, _auth, _has_command, _has_route, _json, _no_5xx, _ratio
from bench.load import Req, run_load
from bench.purchases import Catalog, run_ledger_verify, seed_catalog
from bench.report import summarize, summarize_load

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
