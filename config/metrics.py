"""The platform's own Prometheus metrics (CONTRACT section 3, ``/metrics``), counted after commit.

Every label takes a bounded set of values (enum values, task names); anything else is counted as ``other``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from celery import signals
from django.db import transaction
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess

PAYMENTS = Counter("platform_payments", "Payments reaching an outcome, by kind.", ["kind", "outcome"])
REFUNDS = Counter("platform_refunds", "Refunds created or settled, by outcome.", ["outcome"])
STRIPE_EVENTS = Counter("platform_stripe_events", "Stripe webhook events by state.", ["state"])
STRIPE_EVENT_APPLY = Histogram(
    "platform_stripe_event_apply_seconds",
    "Time to apply one claimed Stripe event.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
IDEMPOTENT_REPLAYS = Counter("platform_idempotent_replays", "Responses replayed for a repeated Idempotency-Key.")
OUT_OF_STOCK = Counter("platform_out_of_stock", "Purchases refused because the stock ran out.")
LEDGER_ENTRIES = Counter("platform_ledger_entries", "Ledger entries committed, by kind.", ["kind"])
OUTBOUND_DELIVERIES = Counter(
    "platform_outbound_deliveries", "Attempts to deliver an order event to a merchant, by outcome.", ["outcome"]
)
CELERY_TASKS = Counter("platform_celery_tasks", "Celery task runs by task and outcome.", ["task", "outcome"])

# The label values each label may take: what the models' enums hold (kept here, below their layers).
PAYMENT_KINDS = frozenset({"order", "deposit"})
PAYMENT_OUTCOMES = frozenset({"succeeded", "failed", "canceled", "processing", "requires_action"})
REFUND_OUTCOMES = frozenset({"pending", "succeeded", "failed", "canceled"})
STRIPE_EVENT_STATES = frozenset({"received", "duplicate", "applied", "failed"})
LEDGER_KINDS = frozenset(
    {
        "deposit", "purchase", "refund", "withdrawal_hold", "withdrawal_paid", "withdrawal_released",
        "dispute_hold", "dispute_released", "dispute_lost", "adjustment", "income_released",
    }
)  # fmt: skip
DELIVERY_OUTCOMES = frozenset({"succeeded", "retrying", "failed"})
TASK_PREFIXES = ("accounts.", "wallets.", "catalog.", "payments.", "orders.", "config.", "dashboard.")


def bounded(value: object, allowed: Iterable[str]) -> str:
    """``value`` as a label when it is one of ``allowed``; ``other`` when not (a label never grows unbounded)."""
    text = str(value)
    return text if text in allowed else "other"


def _after_commit(fn: Callable[[], None]) -> None:
    # Outside a transaction on_commit runs it now; inside, only if (and when) the outermost commits.
    transaction.on_commit(fn)


def count_payment_on_commit(*, kind: object, outcome: object) -> None:
    _after_commit(PAYMENTS.labels(bounded(kind, PAYMENT_KINDS), bounded(outcome, PAYMENT_OUTCOMES)).inc)


def count_wallet_purchase_on_commit() -> None:
    """A wallet purchase: its payment succeeded and its purchase entry is posted, in one statement."""
    count_payment_on_commit(kind="order", outcome="succeeded")
    count_ledger_entry_on_commit(kind="purchase")


def count_refund_on_commit(*, outcome: object) -> None:
    _after_commit(REFUNDS.labels(bounded(outcome, REFUND_OUTCOMES)).inc)


def count_ledger_entry_on_commit(*, kind: object) -> None:
    _after_commit(LEDGER_ENTRIES.labels(bounded(kind, LEDGER_KINDS)).inc)


def count_delivery_on_commit(*, outcome: object) -> None:
    _after_commit(OUTBOUND_DELIVERIES.labels(bounded(outcome, DELIVERY_OUTCOMES)).inc)


def count_stripe_event_on_commit(*, state: str) -> None:
    _after_commit(STRIPE_EVENTS.labels(bounded(state, STRIPE_EVENT_STATES)).inc)


def count_stripe_event_received(*, first: bool) -> None:
    """One delivery of a Stripe event: received, and a duplicate unless it claimed the event."""
    count_stripe_event_on_commit(state="received")
    if not first:
        count_stripe_event_on_commit(state="duplicate")


def stripe_event_claimed(first: bool) -> bool:
    """``count_stripe_event_received`` around a claim; answers the claim's own answer."""
    count_stripe_event_received(first=first)
    return first


def stripe_event_apply_started() -> float:
    return time.perf_counter()


def count_stripe_event_applied(*, started: float, handled: bool) -> None:
    """An event applied (its handler ran and committed); ignored types only time their bookkeeping."""
    STRIPE_EVENT_APPLY.observe(time.perf_counter() - started)
    if handled:
        count_stripe_event_on_commit(state="applied")


def count_idempotent_replay() -> None:
    """A replay writes nothing: counted when it is answered."""
    IDEMPOTENT_REPLAYS.inc()


def count_out_of_stock() -> None:
    """A refusal writes nothing (the statement or transaction rolled back): counted when it is answered."""
    OUT_OF_STOCK.inc()


# --- Celery task outcomes (signals, in the worker process) -------------------------------------


def _task_name(sender: Any) -> str:
    name = str(getattr(sender, "name", sender) or "")
    return name if name.startswith(TASK_PREFIXES) else "other"


@signals.task_success.connect
def _task_succeeded(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "succeeded").inc()


@signals.task_failure.connect
def _task_failed(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "failed").inc()


@signals.task_retry.connect
def _task_retried(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "retried").inc()


# --- reading them ----------------------------------------------------------------------------


def multiprocess_dir() -> str:
    """Where prometheus-client's multiprocess mode keeps each process's values ('' when off)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry_for_scrape() -> CollectorRegistry | None:
    """Under gunicorn (``PROMETHEUS_MULTIPROC_DIR`` set) a registry summing every process's files;
    None in a single process (the default registry then serves)."""
    if not multiprocess_dir():
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
