"""Faults injected for real (issue 15 item 6 c): a real Celery worker process (prefork, not eager) SIGKILLed
in the middle of the Stripe webhook drain, then a new worker: every event is applied, each exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from django.core.management import call_command

from payments.models import StripeEvent, StripeEventStatus
from tests.factories import CustomerFactory
from tests.faults.checks import assert_invariants
from tests.faults.conftest import FaultStack
from tests.payments.test_webhooks import event_body, sign, webhook_url
from tests.scale.test_many_instances import _balance, _deposit_charged_unseen
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
