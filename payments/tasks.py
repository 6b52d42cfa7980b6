"""Celery tasks of the payments app (eager in tests and the demo)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache
from django.utils import timezone

from payments.models import StripeEvent, StripeEventStatus
from payments.services.events import stripe_event_process
from payments.services.reconcile import payments_reconcile
from payments.webhooks import DRAIN_FLAG, event_apply_lock, pending_events_locked

logger = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 10
# Pending events a drain locks and applies per round.
DRAIN_BATCH = 10
# First retry of an event that failed in a drain; process_stripe_event backs off from there.
FAILED_EVENT_RETRY_SECONDS = 5


@shared_task(bind=True, acks_late=True)
def drain_stripe_events(self: Any) -> int:
    """Applies pending Stripe events, oldest first, until none is left; returns how many it took.

    ``payments.webhooks.drain_soon`` schedules it. It clears the scheduled flag
    before reading anything, so an event claimed after that read schedules a
    drain of its own: none is left behind. Drains running side by side take
    different events (``pending_events_locked``). An event that fails is
    recorded ``failed`` and handed to ``process_stripe_event`` for its retries.
    """
    cache.delete(DRAIN_FLAG)
    taken = 0
    failed: list[str] = []  # not taken again by this drain, whatever state the failure left them in
    while True:
        failed_now = []
        with pending_events_locked(limit=DRAIN_BATCH, skip=failed) as batch:
            if not batch:
                return taken
            for event_id in batch:
                taken += 1
                try:
                    stripe_event_process(event_id=event_id)
                except Exception:
                    logger.warning("stripe event failed", extra={"event_id": event_id, "attempt": 1}, exc_info=True)
                    failed_now.append(event_id)
        failed += failed_now
        if not self.request.is_eager:  # tests and the demo: the sweep or the admin replays it
            for event_id in failed_now:
                process_stripe_event.apply_async((event_id,), countdown=FAILED_EVENT_RETRY_SECONDS)


@shared_task(bind=True, max_retries=5, acks_late=True)
def process_stripe_event(self: Any, event_id: str) -> None:
    """Applies one claimed Stripe event; retried with backoff, then left ``failed`` for the replay."""
    with event_apply_lock(event_id) as mine:
        if not mine:
            return  # a drain is applying it right now
        try:
            stripe_event_process(event_id=event_id)
        except Exception as exc:
            logger.warning(
                "stripe event failed", extra={"event_id": event_id, "attempt": self.request.retries + 1}, exc_info=True
            )
            if self.request.is_eager:
                return  # tests and the demo: the failure is recorded; retry_failed_events or the admin replays it
            raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc


@shared_task
def retry_failed_events() -> int:
    """Re-runs failed events (bounded attempts) and pending ones whose drain was lost."""
    stale = timezone.now() - timedelta(minutes=5)
    failed = StripeEvent.objects.filter(status=StripeEventStatus.FAILED, attempts__lt=MAX_EVENT_ATTEMPTS)
    lost = StripeEvent.objects.filter(status=StripeEventStatus.PENDING, received_at__lte=stale)
    ids = list(failed.values_list("pk", flat=True)[:500]) + list(lost.values_list("pk", flat=True)[:500])
    for event_id in ids:
        process_stripe_event.delay(event_id)
    return len(ids)


@shared_task
def reconcile_payments(min_age_seconds: int | None = None) -> dict[str, int]:
    """Settles card payments and refunds left in flight (Stripe was down, a webhook never came)."""
    return payments_reconcile(min_age_seconds=min_age_seconds)


@shared_task
def reconcile_daily() -> dict[str, int]:
    """The daily three-way reconciliation with Stripe (``manage.py reconcile`` over the last two days)."""
    from payments.services.reconcile_run import reconcile_run

    run = reconcile_run(since=timezone.now() - timedelta(days=2))
    if run.mismatched:
        logger.error("reconcile: unexplained mismatches remain", extra={"run": run.pk, "mismatched": run.mismatched})
    return {"matched": run.matched, "fixed": run.fixed, "mismatched": run.mismatched}


@worker_ready.connect
def drain_on_worker_start(sender: Any = None, **_: Any) -> None:
    """A worker that starts drains what is pending at once: one killed in the middle of a drain leaves its
    message unacked until the broker's visibility timeout (an hour on Redis) and the drain flag cleared, so
    without this the events waited for ``retry_failed_events`` (pending for 5 minutes, swept every 5)."""
    drain_stripe_events.delay()
