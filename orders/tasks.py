"""Celery tasks of the orders app: reservation expiry and order-event delivery."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from orders.models import DeliveryStatus
from orders.services import events, notices
from orders.services.cancel import orders_expire


def _eager() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


@shared_task(name="orders.tasks.expire_reservations")
def expire_reservations() -> int:
    """Beat, every minute: cancels card orders whose reservation ran out (stock back).

    It also runs the delivery sweep, so retries and lost fan-outs are picked up
    even where no separate beat entry schedules ``deliveries_retry_due``.
    """
    canceled = orders_expire()
    deliveries_retry_due()
    return canceled


@shared_task(name="orders.tasks.event_fan_out")
def event_fan_out(event_id: str) -> None:
    """After an order event commits: creates its deliveries and sends each once."""
    for delivery_id in events.event_fan_out(event_id=event_id):
        deliver_event.delay(delivery_id)


@shared_task(name="orders.tasks.deliver_event")
def deliver_event(delivery_id: str) -> None:
    """One attempt of one delivery; a failure schedules the next at its backoff time.

    With eager tasks (no broker: demo, tests) the next attempt is left to the
    sweep instead, since an eager countdown would not wait.
    """
    delivery = events.delivery_attempt(delivery_id=delivery_id)
    if delivery is not None and delivery.status == DeliveryStatus.PENDING and not _eager():
        deliver_event.apply_async((delivery_id,), eta=delivery.next_attempt_at)


@shared_task(name="orders.tasks.deliveries_retry_due")
def deliveries_retry_due() -> int:
    """Sends every delivery whose retry is due and fans out events whose fan-out was lost."""
    for event_id in events.events_undispatched():
        event_fan_out.delay(event_id)
    due = events.deliveries_due()
    for delivery_id in due:
        deliver_event.delay(delivery_id)
    events.delivery_log_prune()  # the delivery log keeps 30 days
    return len(due)


@shared_task(name="orders.tasks.receipts_send_due", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def receipts_send_due() -> int:
    """The receipts' drain: queued after commits that paid orders (at most one per process per
    RECEIPT_BATCH_SECONDS) and by beat every minute; sends every receipt due, each at most once."""
    return notices.receipts_send_due()


@shared_task(name="orders.tasks.order_receipt_send", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def order_receipt_send(order_id: str) -> bool:
    """One order's receipt now, at most once however often this runs (the drain sends them in batches)."""
    return notices.receipt_send(order_id=order_id)


@shared_task(name="orders.tasks.order_refund_notice_send", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def order_refund_notice_send(order_id: str, refunded: int) -> bool:
    """After a refund settles: the buyer's notice (one per refunded total)."""
    return notices.refund_notice_send(order_id=order_id, refunded=refunded)
