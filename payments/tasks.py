"""Celery tasks of the payments app (eager in tests and the demo)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 10


@shared_task(bind=True, max_retries=5, acks_late=True)
def process_stripe_event(self: Any, event_id: str) -> None:
    """Applies one claimed Stripe event; retried with backoff, then left ``failed`` for the replay."""
    from payments.services import stripe_event_process

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
    """Re-runs failed events (bounded attempts) and pending ones whose task was lost."""
    from payments.models import StripeEvent, StripeEventStatus

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
    from payments.services import payments_reconcile

    return payments_reconcile(min_age_seconds=min_age_seconds)
