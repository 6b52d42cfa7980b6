"""Two web servers and two Celery workers on one PostgreSQL, one server through PgBouncer.

Server A is the contract's command (gunicorn with config/gunicorn.py), server B production's
(granian, ``python -m config.serve``). Server A and both workers connect directly; server B goes
through Debian's PgBouncer in transaction mode with prepared statements off (the workers' session
advisory locks need a session of their own).
The flash-sale, double-spend and webhook storms are spread over both servers; then the invariants.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import requests
import stripe
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from accounts.services import tokens_for
from bench.pgbouncer import PgBouncer
from bench.stack import free_port
from orders.models import Order, OrderStatus
from payments.models import Payment, StripeEvent, StripeEventStatus
from tests.conftest import client_for
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.orders.conftest import fund
from tests.payments.test_webhooks import event_body, sign, webhook_url
from wallets.models import Account, Deposit, Entry

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN = "scale-metrics-token"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stripe]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process goes away, and a process group of its own."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


@dataclass
class Instances:
    """The processes of the test; ``stop()`` ends every one of them (process groups: the servers' workers too)."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )

    def wait_http(self, name: str, url: str, timeout: float = 180) -> None:  # generous: 2 shared cores
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited while starting:\n{self.log(name)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer within {timeout}s:\n{self.log(name)}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _database_url() -> str:
    db = connection.settings_dict
    host = quote(db["HOST"] or "127.0.0.1", safe="")  # the embedded server's host is a socket directory
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"


def _env(database_url: str, stripe_base: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_DB", "CELERY_", "PROMETHEUS_"))}
    env.pop("TESTING", None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,  # the test mints the JWTs the servers check
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        THROTTLE_SCALE="0",
        DATABASE_URL=database_url,
        REDIS_URL=settings.REDIS_URL,
        STRIPE_API_BASE=stripe_base,
        STRIPE_WEBHOOK_SECRET="whsec_" + "scale0test" * 3,  # startup wants one; deliveries check the endpoint row
        STRIPE_MAX_NETWORK_RETRIES="0",
        METRICS_TOKEN=TOKEN,
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
        **extra,
    )
    return env


@dataclass
class Stack:
    servers: list[str]
    bouncer: PgBouncer


@pytest.fixture
def stack(fake_stripe: Any, tmp_path: Path) -> Iterator[Stack]:
    """Two web servers (A gunicorn direct, B granian through PgBouncer) and two Celery workers; all
    stopped at the end."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # this suite's own Redis database: broker and cache
    direct = _database_url()
    bouncer = PgBouncer(direct, pool_mode="transaction", pool_size=8).start()
    instances = Instances(tmp_path)
    urls = []
    # Static files collected as the image does at build (readyz answers 503 without them: config.E010).
    static = {"STATIC_ROOT": str(tmp_path / "static")}
    collect = [str(BIN / "python"), str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"]
    collected = subprocess.run(
        collect, env=_env(direct, fake_stripe.url, **static), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert collected.returncode == 0, collected.stderr
    try:
        gunicorn = [str(BIN / "gunicorn"), "config.wsgi:application", "--config", str(ROOT / "config" / "gunicorn.py")]
        granian = [str(BIN / "python"), "-m", "config.serve"]
        for name, server, db_url, extra in (
            ("web_a", gunicorn, direct, static),
            (
                "web_b",
                granian,
                bouncer.url_for(direct),
                {"DATABASE_PREPARED_STATEMENTS": "false", "DB_CONN_MAX_AGE": "0", **static},
            ),
        ):
            port = free_port()
            argv = [
                *server,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--graceful-timeout",
                "3",
            ]
            instances.spawn(name, argv, _env(db_url, fake_stripe.url, **extra))
            urls.append(f"http://127.0.0.1:{port}")
        for name in ("worker_1", "worker_2"):
            argv = [str(BIN / "celery"), "-A", "config", "worker", "-n", f"{name}@%h", "--concurrency", "2"]
            argv += ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"]
            instances.spawn(name, argv, _env(direct, fake_stripe.url, CELERY_DB_REUSE_MAX="100", **static))
        for name, url in zip(("web_a", "web_b"), urls, strict=True):
            instances.wait_http(name, f"{url}/readyz")
        yield Stack(servers=urls, bouncer=bouncer)
    finally:
        instances.stop()
        bouncer.stop()


def _storm(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=24) as pool:
        return list(pool.map(lambda call: call(), calls))


def _buy(server: str, user: Any, product_id: str) -> Callable[[], requests.Response]:
    headers = {"Authorization": f"Bearer {tokens_for(user)['access']}"}
    body = {"product": product_id, "payment_method": "wallet"}
    return lambda: requests.post(f"{server}/api/v1/orders", json=body, headers=headers, timeout=60)


def _balance(user: Any) -> int:
    account = Account.objects.filter(owner=user).first()
    return account.balance if account else 0


def _deposit_charged_unseen(fake_stripe: Any, user: Any, amount: int) -> dict[str, Any]:
    """A deposit Stripe charged while our record still says processing: its payment_intent.succeeded event."""
    card = fake_stripe.attach_card(user)
    with fake_stripe.unreachable():
        client_for(user).post("/api/v1/wallet/deposits", {"amount": amount, "payment_method": card}, format="json")
    payment = Payment.objects.get(user=user)
    intent = stripe.PaymentIntent.create(
        amount=amount,
        currency="usd",
        customer=user.stripe_customer.stripe_customer_id,
        payment_method=card,
        confirm=True,
        metadata={"payment_id": payment.pk, "kind": "deposit"},
    )
    return intent.to_dict()  # a StripeObject is not a dict


def _platform_totals(servers: list[str]) -> Counter[str]:
    """Each platform counter summed over both servers (each server sums its own workers)."""
    totals: Counter[str] = Counter()
    for server in servers:
        response = requests.get(f"{server}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert response.status_code == 200
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name.startswith("platform_") and sample.name.endswith("_total"):
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    totals[f"{sample.name}{{{labels}}}"] += int(sample.value)
    return totals


def test_two_servers_and_two_workers_when_storms_hit_both_then_invariants_hold(stack: Stack, fake_stripe: Any) -> None:
    a, b = stack.servers
    merchant = MerchantFactory.create()
    flash = ProductFactory.create(merchant=merchant, price=500, stock=20, fulfillment="FLASH")
    spend = ProductFactory.create(merchant=merchant, price=1000, stock=100, fulfillment="SPEND")
    buyers = [CustomerFactory.create() for _ in range(60)]
    for buyer in buyers:
        fund(buyer, 1000)
    spender = CustomerFactory.create()
    fund(spender, 3000)
    depositors = [CustomerFactory.create() for _ in range(6)]
    intents = [_deposit_charged_unseen(fake_stripe, user, 2500) for user in depositors]
    bodies = [event_body("payment_intent.succeeded", intent) for intent in intents]
    path = webhook_url()
    for server in (a, b):  # without a token /metrics is closed on every instance
        assert requests.get(f"{server}/metrics", timeout=10).status_code == 401

    flash_sale = _storm([_buy((a, b)[i % 2], buyer, flash.pk) for i, buyer in enumerate(buyers)])
    double_spend = _storm([_buy((a, b)[i % 2], spender, spend.pk) for i in range(12)])
    deliveries = _storm(
        [
            functools.partial(
                requests.post, f"{server}{path}", data=body, timeout=60,
                headers={"Content-Type": "application/json", "Stripe-Signature": sign(body)},
            )
            for body in bodies for server in (a, b, b, a)
        ]
    )  # fmt: skip

    assert Counter(r.status_code for r in flash_sale) == {201: 20, 409: 40}, [r.text for r in flash_sale[:3]]
    assert {r.url.split("/api")[0] for r in flash_sale if r.status_code == 201} == {a, b}  # both servers sold
    flash.refresh_from_db()
    assert flash.stock == 0
    assert Order.objects.filter(product=flash, status=OrderStatus.PAID).count() == 20
    assert Counter(r.status_code for r in double_spend) == {201: 3, 402: 9}
    assert _balance(spender) == 0
    assert not Account.objects.filter(balance__lt=0).exists()
    assert all(r.status_code == 200 for r in deliveries), [r.text for r in deliveries][:3]
    deadline = time.monotonic() + 60  # the workers apply the events
    while StripeEvent.objects.filter(status=StripeEventStatus.PROCESSED).count() < len(bodies):
        assert time.monotonic() < deadline, list(StripeEvent.objects.values_list("status", "last_error"))
        time.sleep(0.2)
    assert StripeEvent.objects.count() == len(bodies)
    assert Entry.objects.filter(kind="deposit").count() == len(bodies)
    assert [_balance(user) for user in depositors] == [2500] * len(depositors)
    assert set(Deposit.objects.values_list("status", flat=True)) == {"succeeded"}
    call_command("ledger_verify")  # raises CommandError when an entry or a balance is off

    totals = _platform_totals([a, b])
    assert totals["platform_payments_total{kind=order,outcome=succeeded}"] == 20 + 3
    assert totals["platform_out_of_stock_total{}"] == 40
    assert totals["platform_stripe_events_total{state=received}"] == 4 * len(bodies)
    assert totals["platform_stripe_events_total{state=duplicate}"] == 3 * len(bodies)
    assert totals["platform_ledger_entries_total{kind=purchase}"] == 23
