"""The ``chaos`` scenario: mixed purchases, top-ups, refunds and webhooks while the fault proxy injects timeouts
and resets into 10 % of Stripe calls and one Celery worker is SIGKILLed; then the invariants.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.stack import PYTHON, ROOT, VAR, _die_with_parent, _wait_http, free_port
from tests.faults.proxy import FaultProxy

FAULT_RATE = 0.10
CLIENTS = 8


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (VAR / f"chaos_{name}.log").open("ab")
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


def _worker(env: dict[str, str], n: int) -> subprocess.Popen[bytes]:
    argv = [str(Path(PYTHON).parent / "celery"), "-A", "config", "worker", "-n", f"chaos{n}@%h", "--concurrency", "2"]
    return _spawn(
        f"worker{n}", [*argv, "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"], env
    )


def _killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _sign(secret: str, body: bytes) -> str:
    stamp = int(time.time())
    return f"t={stamp},v1={hmac.new(secret.encode(), f'{stamp}.'.encode() + body, hashlib.sha256).hexdigest()}"


class _Client:
    """One simulated user's session against the chaos server: retries a request with its Idempotency-Key."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.http = requests.Session()

    def post(self, path: str, body: dict[str, Any], statuses: Counter[str], kind: str) -> requests.Response | None:
        key = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}
        for attempt in range(6):
            try:
                response = self.http.post(f"{self.base}{path}", json=body, headers=headers, timeout=20)
            except requests.RequestException as exc:
                statuses[f"{kind} {type(exc).__name__}"] += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code == 409 and "idempotency_key_in_use" in response.text:
                time.sleep(0.3 * (attempt + 1))
                continue
            return response
        return None


def chaos(bench: Any) -> dict[str, Any]:
    """``bench`` is the run's Bench (its ``stack``, ``quick`` and ``webhook_path``)."""
    from django.conf import settings

    from accounts.services import tokens_for
    from orders.models import Order
    from payments.models import Payment, StripeEvent
    from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
    from wallets.ledger import wallet_adjust, wallet_id_for

    stack = bench.stack
    seconds = 5.0 if bench.quick else 60.0
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 1)
        mark = now

    # Users sign in by token here: no password (hashing one costs tens of milliseconds per user).
    merchant = MerchantFactory(password=None)
    products = [ProductFactory(merchant=merchant, price=500 + 100 * i, stock=None) for i in range(3)]
    buyers = [CustomerFactory(password=None) for _ in range(CLIENTS)]  # one simulated user each
    for buyer in buyers:
        wallet_adjust(
            account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=10**7, reason="chaos", actor=None
        )

    from django.utils import timezone

    # chaos judges only its own window: what earlier scenarios left in the bench database is theirs.
    window_start = timezone.now()
    phase("seed")
    proxy = FaultProxy("127.0.0.1", stack.stripe_port, delay_seconds=3.0).start()
    env = {
        **stack.env(),
        "STRIPE_API_BASE": proxy.url,
        "STRIPE_TIMEOUT_SECONDS": "2",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    port = free_port()
    server = [PYTHON, "-m", "config.serve", "--graceful-timeout", "5"]
    web = _spawn("web", [*server, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"], env)
    workers = [_worker(env, 1)]
    base = f"http://127.0.0.1:{port}"
    statuses: Counter[str] = Counter()
    paid_cards: list[str] = []
    lock = threading.Lock()
    try:
        _wait_http(f"{base}/healthz", web, timeout=60)
        phase("server_start")
        clients = [_Client(base, tokens_for(buyer)["access"]) for buyer in buyers]
        cards = {}

        def save_card(i: int) -> None:  # before the faults start
            card = {"payment_method": "pm_card_visa"}
            saved = clients[i].post("/api/v1/payment-methods", card, statuses, "card_save")
            if saved is not None and saved.status_code == 201:
                cards[buyers[i].pk] = saved.json()["id"]

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            list(pool.map(save_card, range(CLIENTS)))
        seller = _Client(base, tokens_for(merchant)["access"])
        proxy.chaos(FAULT_RATE, ("delay", "reset"))
        ends = time.monotonic() + seconds
        killed_at = time.monotonic() + seconds / 3

        def one_user(i: int) -> None:
            rng = random.Random(i)
            client, buyer = clients[i], buyers[i]
            while time.monotonic() < ends:
                product = rng.choice(products).pk
                op = rng.choice(("card", "card", "wallet", "topup", "refund", "webhook"))
                if op == "card" and buyer.pk in cards:
                    body = {"product": product, "payment_method": "card", "card": cards[buyer.pk]}
                    done = client.post("/api/v1/orders", body, statuses, "card_order")
                    if done is not None and done.status_code == 201 and done.json().get("status") == "paid":
                        with lock:
                            paid_cards.append(done.json()["id"])
                elif op == "topup" and buyer.pk in cards:
                    client.post(
                        "/api/v1/wallet/deposits",
                        {"amount": 1000, "payment_method": cards[buyer.pk]},
                        statuses,
                        "topup",
                    )
                elif op == "refund" and paid_cards:
                    with lock:
                        order = paid_cards.pop() if paid_cards else None
                    if order:
                        seller.post("/api/v1/refunds", {"order": order, "amount": 100}, statuses, "refund")
                elif op == "webhook" and bench.webhook_path:
                    payment = Payment.objects.filter(stripe_payment_intent_id__isnull=False).order_by("?").first()
                    if payment is not None:
                        body = _redelivery(payment.stripe_payment_intent_id, stack.stripe_base)
                        try:
                            got = requests.post(
                                f"{base}{bench.webhook_path}",
                                data=body,
                                timeout=20,
                                headers={
                                    "Content-Type": "application/json",
                                    "Stripe-Signature": _sign(stack.webhook_secret, body),
                                },
                            )
                            statuses[f"webhook {got.status_code}"] += 1
                        except requests.RequestException as exc:
                            statuses[f"webhook {type(exc).__name__}"] += 1
                else:
                    client.post(
                        "/api/v1/orders", {"product": product, "payment_method": "wallet"}, statuses, "wallet_order"
                    )

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            running = [pool.submit(one_user, i) for i in range(CLIENTS)]
            while time.monotonic() < killed_at:
                time.sleep(0.05)
            _killpg(workers[0], signal.SIGKILL)  # in the middle of whatever it was doing
            workers[0].wait(10)
            workers.append(_worker(env, 2))
            for future in running:
                future.result()
        elapsed = time.perf_counter() - started
        phase("cards_and_load")
        proxy.set("pass")
        deadline = time.monotonic() + 60
        ours = StripeEvent.objects.filter(received_at__gte=window_start)  # earlier scenarios' backlog is theirs
        while ours.exclude(status__in=("processed", "ignored", "failed")).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        proxy.stop()
        for proc in (web, *workers):
            _killpg(proc, signal.SIGTERM)
        for proc in (web, *workers):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            _killpg(proc, signal.SIGKILL)

    phase("event_drain_and_stop")
    check = {**stack.env(), "STRIPE_RECONCILE_AFTER_SECONDS": "0"}
    since = window_start.isoformat()
    reconcile_started = timezone.now()
    reconciled = subprocess.run([PYTHON, "manage.py", "reconcile", "--since", since], cwd=ROOT, env=check,
                                capture_output=True, timeout=300, check=False)  # fmt: skip
    unexplained, seeded = _reconcile_unexplained(reconcile_started)
    phase("reconcile")
    verified = subprocess.run([PYTHON, "manage.py", "ledger_verify"], cwd=ROOT, env=check,
                              capture_output=True, timeout=300, check=False)  # fmt: skip
    phase("ledger_verify")
    intents = _intents(stack.stripe_base, settings.STRIPE_SECRET_KEY)
    window = Payment.objects.filter(created_at__gte=window_start)
    window_ids = set(window.values_list("id", flat=True))
    known_ids = set(Payment.objects.values_list("id", flat=True))
    start_stamp = int(window_start.timestamp())

    def in_window(intent: dict[str, Any]) -> bool:  # ours by metadata, or an orphan created in the window
        payment_id = (intent.get("metadata") or {}).get("payment_id")
        return payment_id in window_ids or (
            payment_id not in known_ids and int(intent.get("created") or 0) >= start_stamp
        )

    charging = [
        i
        for i in intents
        if in_window(i) and i["status"] not in ("requires_confirmation", "requires_payment_method", "canceled")
    ]
    live = window.filter(method="card", status__in=("succeeded", "processing", "requires_action")).count()
    window_orders = Order.objects.filter(created_at__gte=window_start)
    order_of = dict(window_orders.filter(payment__isnull=False).values_list("payment_id", "id"))
    per_order = Counter(
        order_of[pid] for i in charging if (pid := (i.get("metadata") or {}).get("payment_id")) in order_of
    )
    orders = window_orders.count()
    unexpected = {k: v for k, v in statuses.items() if k.split()[-1].isdigit() and int(k.split()[-1]) >= 500
                  and int(k.split()[-1]) not in (502, 503)}  # fmt: skip
    total = sum(v for k, v in statuses.items() if k.split()[-1].isdigit())
    figures: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "requests_answered": total,
        "answered_per_second": round(total / elapsed, 1) if elapsed else None,
        "outcomes": dict(sorted(statuses.items())),
        "stripe_calls_seen_by_proxy": dict(proxy.seen),
        "worker_killed": True,
        "orders": orders,
        "intents_at_stripe": len(intents),
        "charging_intents_at_stripe": len(charging),
        "live_card_payments": live,
        "one_charge_per_order": len(charging) == live and max(per_order.values(), default=1) == 1,
        "ledger_verify_exit": verified.returncode,
        "reconcile_exit": reconciled.returncode,
        "reconcile_unexplained": unexplained,
        "card_clearing_posted_by_the_bench_seed": seeded,
        "reconcile_summary": reconciled.stdout.decode(errors="replace")[-800:],
        "unexpected_5xx": unexpected,
        "phase_seconds": phases,
    }
    problems = []
    if not figures["one_charge_per_order"]:
        problems.append(f"{len(charging)} charging intents at Stripe for {live} live card payments")
    if verified.returncode:
        problems.append("ledger_verify failed: " + verified.stdout.decode(errors="replace")[-300:])
    if unexplained or reconciled.returncode not in (0, 1):
        problems.append(
            f"reconcile left a mismatch: {unexplained or reconciled.stderr.decode(errors='replace')[-300:]}"
        )
    if unexpected:
        problems.append(f"5xx other than 502/503: {unexpected}")
    if not total:
        problems.append("no request was answered")
    for problem in problems:
        bench.problems.append(f"chaos: {problem}")
    figures["status"] = "ok" if not problems else "failed"
    phase("judge")
    return figures


# The bench's seed and generator fund wallets with ledger entries of their own against card clearing, with no
# card payment behind them (bench/seed.py, bench/ledger_gen.py): reconcile's clearing check counts them too.
SEEDED_REFERENCES = ("bench-seed-", "bench-gen-")


def _seeded(account_id: str) -> int:
    """What the bench's seed posted to ``account_id`` directly, without a payment."""
    from django.db.models import Q, Sum

    from wallets.models import Posting

    by_seed = Q()
    for prefix in SEEDED_REFERENCES:
        by_seed |= Q(entry__reference__startswith=prefix)
    return int(Posting.objects.filter(by_seed, account_id=account_id).aggregate(t=Sum("amount"))["t"] or 0)


def _reconcile_unexplained(after: Any) -> tuple[list[str], dict[str, int]]:
    """The mismatches of the reconcile run started after ``after`` that the bench cannot explain, and what the
    seed wrote to each card-clearing account found off. A clearing gap of exactly the seed's postings is
    explained; any other mismatch, or no finished run, is not."""
    from payments.models import ReconcileItem, ReconcileOutcome, ReconcileRun

    run = ReconcileRun.objects.filter(started_at__gte=after, finished_at__isnull=False).order_by("started_at").first()
    if run is None:
        return ["no finished reconcile run"], {}
    seeded: dict[str, int] = {}
    unexplained = []
    for item in ReconcileItem.objects.filter(run=run, outcome=ReconcileOutcome.MISMATCHED).order_by("pk"):
        if item.object_type == "card_clearing":
            seeded[item.object_id] = _seeded(item.object_id)
            if int(item.ours) - int(item.stripe) == seeded[item.object_id]:
                continue
        unexplained.append(f"{item.object_type} {item.object_id} {item.field}: ours={item.ours} stripe={item.stripe}")
    return unexplained, seeded


def _redelivery(intent_id: str, stripe_base: str) -> bytes:
    """Stripe (re)delivering ``payment_intent.succeeded`` (or whatever the intent is now) for a known intent."""
    from django.conf import settings

    intent = requests.get(f"{stripe_base}/v1/payment_intents/{intent_id}", timeout=10,
                          auth=(settings.STRIPE_SECRET_KEY, "")).json()  # fmt: skip
    kind = "payment_intent.succeeded" if intent.get("status") == "succeeded" else "payment_intent.processing"
    event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2017-08-15",
             "created": int(time.time()), "livemode": False, "type": kind, "data": {"object": intent},
             "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}  # fmt: skip
    return json.dumps(event).encode()


def _intents(stripe_base: str, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        listed = requests.get(f"{stripe_base}/v1/payment_intents", params=params, auth=(key, ""), timeout=30)
        listed.raise_for_status()
        page = listed.json()
        found += page.get("data", [])
        if not page.get("has_more") or not page.get("data"):
            return found
        params["starting_after"] = page["data"][-1]["id"]
