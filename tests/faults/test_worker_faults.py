"""Faults injected for real (issue 15 item 6 c): a real Celery worker process (prefork, not eager) SIGKILLed
in the middle of the Stripe webhook drain, then a new worker: every event is applied, each exactly once; and
SIGKILLed in the middle of an outbound merchant webhook POST, then a new worker: the delivery is retried with
the same webhook-id and recorded as one success.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from celery import Celery
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config import embedded
from orders.models import DeliveryAttempt, DeliveryStatus, EventDelivery, Order, OrderEvent
from payments.models import StripeEvent, StripeEventStatus
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.faults.checks import assert_invariants, headers, post_until_answered
from tests.faults.conftest import FaultStack
from tests.payments.test_webhooks import event_body, sign, webhook_url
from tests.scale.test_many_instances import _balance, _deposit_charged_unseen
from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Deposit, Entry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stripe]


@pytest.fixture(autouse=True)
def _settle_at_once(settings: Any) -> None:
    settings.STRIPE_RECONCILE_AFTER_SECONDS = 0


def _processed() -> int:
    return StripeEvent.objects.filter(status=StripeEventStatus.PROCESSED).count()


def test_webhook_drain_when_worker_killed_mid_drain_then_new_worker_applies_each_event_once(
    faults: FaultStack, fake_stripe: Any
) -> None:
    depositors = [CustomerFactory() for _ in range(6)]
    intents = [_deposit_charged_unseen(fake_stripe, user, 2500) for user in depositors]
    bodies = [event_body("payment_intent.succeeded", intent) for intent in intents]
    path = webhook_url()
    faults.proxy.set("delay", delay_seconds=1.0)  # each event's Stripe read is slow: the drain takes seconds
    worker = next(name for name in faults.procs if name.startswith("worker_"))

    statuses = []
    for body in bodies:
        signed = {"Content-Type": "application/json", "Stripe-Signature": sign(body)}
        statuses.append(requests.post(f"{faults.web_url}{path}", data=body, headers=signed, timeout=30).status_code)
    deadline = time.monotonic() + 60
    while _processed() < 1:
        assert time.monotonic() < deadline, faults.log(worker)
        time.sleep(0.05)
    faults.kill(worker)  # in the middle of the drain: some events applied, some not
    applied_before_kill = _processed()
    faults.proxy.set("pass")
    faults.start_worker()
    deadline = time.monotonic() + 90
    while _processed() < len(bodies):
        assert time.monotonic() < deadline, list(StripeEvent.objects.values_list("status", "last_error"))
        time.sleep(0.2)

    assert statuses == [200] * len(bodies)
    assert applied_before_kill < len(bodies)
    assert StripeEvent.objects.count() == len(bodies)
    assert Entry.objects.filter(kind="deposit").count() == len(bodies)
    assert [_balance(user) for user in depositors] == [2500] * len(depositors)
    assert set(Deposit.objects.values_list("status", flat=True)) == {"succeeded"}
    call_command("ledger_verify")
    assert_invariants(statuses)


class HoldingReceiver:
    """The merchant's endpoint: a real HTTP server on 127.0.0.1 that records every delivery and holds the first
    one open until ``release`` (so the test knows the worker is inside that POST), then answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if len(receiver.received) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(60)
                with contextlib.suppress(OSError):  # the sender of the held one is dead by now
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orders"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def merchant_endpoint() -> Iterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    yield receiver
    receiver.close()


def _sweep_deliveries() -> None:
    """What beat sends every minute (``orders.tasks.deliveries_retry_due``), through the stack's own broker."""
    # Not the current app: this process keeps queueing its own tasks eagerly (config.queue.task_named).
    with Celery(broker=embedded.celery_broker_url(settings.REDIS_URL), set_as_current=False) as app:
        app.send_task("orders.tasks.deliveries_retry_due")


def test_outbound_delivery_when_worker_killed_mid_post_then_new_worker_delivers_it_once_with_the_same_id(
    faults: FaultStack, merchant_endpoint: HoldingReceiver
) -> None:
    merchant, buyer = MerchantFactory.create(), CustomerFactory.create()
    product = ProductFactory.create(merchant=merchant, price=1200, stock=3)
    wallet_adjust(account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=5000, reason="fund", actor=None)
    registered = requests.post(
        f"{faults.web_url}/api/v1/merchant/webhooks", json={"url": merchant_endpoint.url}, headers=headers(merchant),
        timeout=15,
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    secret = registered.json()["secret"]
    worker = next(name for name in faults.procs if name.startswith("worker_"))

    statuses = post_until_answered(
        f"{faults.web_url}/api/v1/orders", {"product": product.pk, "payment_method": "wallet"}, buyer, "outbound-1"
    )
    assert statuses == [201]
    assert merchant_endpoint.first_arrived.wait(60), faults.log(worker)
    faults.kill(worker)  # inside the POST: the merchant has the request, the worker never hears the answer
    merchant_endpoint.release.set()
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert not DeliveryAttempt.objects.exists()  # nothing was logged by the dead worker

    new_worker = faults.start_worker()
    # The dead worker's claim is a lease of DELIVERY_LEASE_SECONDS: pass that time, then beat's sweep comes.
    EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    _sweep_deliveries()
    deadline = time.monotonic() + 60
    while EventDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING:
        assert time.monotonic() < deadline, faults.log(new_worker)
        time.sleep(0.2)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.SUCCEEDED, 2, 200)
    assert delivery.delivered_at is not None
    logged = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("attempt", "status_code"))
    assert logged == [(2, 200)]  # the retry is logged, once; the lost attempt is counted, never a second success
    assert EventDelivery.objects.count() == 1 and OrderEvent.objects.count() == 1
    [(first_headers, first_body), (second_headers, second_body)] = merchant_endpoint.received
    event = OrderEvent.objects.get()
    assert first_headers["webhook-id"] == second_headers["webhook-id"] == event.pk  # the merchant can drop the repeat
    assert first_body == second_body and json.loads(second_body)["type"] == "order.paid"
    for received_headers, body in merchant_endpoint.received:
        Webhook(secret).verify(body, received_headers)  # both signed with the endpoint's secret
    assert Order.objects.get().status == "paid"
    assert_invariants(statuses)
