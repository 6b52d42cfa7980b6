"""Order events (an outbox written in the order's transaction) and their signed delivery to subscribers.

No row locks: a delivery is claimed by one conditional UPDATE (a lease); the POST runs outside any transaction.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.mail import mail_send_once
from accounts.models import User
from accounts.services import audit_record
from config import metrics
from config.queue import task_named
from orders import webhooks
from orders.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    Order,
    OrderEvent,
    OrderEventType,
    OrderStatus,
    WebhookEndpoint,
)
from orders.rendering import sale_object

logger = logging.getLogger(__name__)

DELIVERY_RETRY_WINDOW = timedelta(days=3)
DELIVERY_LEASE_SECONDS = 60
DELIVERY_BACKOFF_CAP_SECONDS = 6 * 3600
DELIVERY_LOG_KEEP = timedelta(days=30)
ENDPOINT_DISABLE_AFTER = timedelta(days=5)
# Queued by name: orders.tasks is a surface above this module.
FAN_OUT_TASK = "orders.tasks.event_fan_out"
DELIVER_TASK = "orders.tasks.deliver_event"


def order_event_object(order: Order) -> dict[str, Any]:
    """The order as subscribers see it: the merchant's sale view (never the fulfillment)."""
    return {"object": "order", **sale_object(order)}


def event_record(
    order: Order,
    event_type: str,
    *,
    key_suffix: str = "",
    extra: dict[str, Any] | None = None,
    check_existing: bool = True,
) -> OrderEvent | None:
    """Writes the event in the caller's transaction; fans it out after commit."""
    key = event_key(order, event_type_for(order, event_type), key_suffix)
    if check_existing and OrderEvent.objects.filter(key=key).exists():
        return None
    event = event_build(order, event_type, key_suffix=key_suffix, extra=extra)
    event.save(force_insert=True)
    event_dispatch_on_commit(event)
    return event


def event_type_for(order: Order, event_type: str) -> str:
    """A refund that leaves money paid is told as ``order.partially_refunded``."""
    if event_type == OrderEventType.REFUNDED and order.status == OrderStatus.PARTIALLY_REFUNDED:
        return OrderEventType.PARTIALLY_REFUNDED
    return event_type


def event_key(order: Order, event_type: str, key_suffix: str = "") -> str:
    return f"{order.pk}:{event_type}:{key_suffix}"


def event_build(
    order: Order,
    event_type: str,
    *,
    key_suffix: str = "",
    extra: dict[str, Any] | None = None,
    ask_receivers: bool = True,
) -> OrderEvent:
    """The unsaved event; already marked dispatched when nobody is subscribed
    (``ask_receivers=False``: the caller's statement decides)."""
    now = timezone.now()
    event_type = event_type_for(order, event_type)
    event = OrderEvent(
        order=order,
        merchant_id=order.merchant_id,
        type=event_type,
        key=event_key(order, event_type, key_suffix),
        created_at=now,
    )
    data = order_event_object(order)
    data.update(extra or {})
    event.payload = {"id": event.pk, "type": event_type, "created": int(now.timestamp()), "data": {"object": data}}
    if ask_receivers and not (settings.ORDER_EVENTS_URL or merchant_has_endpoints(order.merchant_id)):
        # Nobody to tell: recorded as dispatched, and no task is queued.
        event.dispatched_at = now
    return event


def event_dispatch_on_commit(event: OrderEvent) -> None:
    """Once the caller commits, fans the saved event out (unless nobody was subscribed)."""
    if event.dispatched_at is None:
        event_id = event.pk
        transaction.on_commit(lambda: _fan_out_enqueue(event_id))


def merchant_has_endpoints(merchant_id: str) -> bool:
    """Whether the merchant has a live endpoint (the wallet purchase's statement asks the same in SQL)."""
    return WebhookEndpoint.objects.filter(merchant_id=merchant_id, deleted_at__isnull=True).exists()


def _fan_out_enqueue(event_id: str) -> None:
    try:
        task_named(FAN_OUT_TASK).delay(event_id)
    except Exception:
        # The order is committed: never fail the request for this. The sweep
        # (deliveries_retry_due) fans out events left undispatched.
        logger.exception("could not enqueue order event fan-out", extra={"event": event_id})


def event_fan_out(*, event_id: str) -> list[str]:
    """Creates an event's deliveries (each live endpoint of its merchant, plus
    ORDER_EVENTS_URL when set), idempotently; returns the ids of those still pending."""
    event = OrderEvent.objects.filter(pk=event_id).first()
    if event is None:
        return []
    now = timezone.now()
    live = WebhookEndpoint.objects.filter(merchant_id=event.merchant_id, deleted_at__isnull=True, enabled=True)
    deliveries = [
        EventDelivery(event=event, endpoint=endpoint, url=endpoint.url, next_attempt_at=now, created_at=now)
        for endpoint in live
        if not endpoint.events or event.type in endpoint.events
    ]
    if settings.ORDER_EVENTS_URL:
        deliveries.append(
            EventDelivery(
                event=event, endpoint=None, url=settings.ORDER_EVENTS_URL, next_attempt_at=now, created_at=now
            )
        )
    with transaction.atomic():
        EventDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OrderEvent.objects.filter(pk=event.pk, dispatched_at__isnull=True).update(dispatched_at=now)
    return list(
        EventDelivery.objects.filter(event_id=event.pk, status=DeliveryStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def delivery_backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 30 s doubling, capped at 6 h, ±10 % jitter (tried for 3 days)."""
    base = getattr(settings, "ORDER_EVENTS_RETRY_BASE_SECONDS", 30)
    seconds = min(base * 2 ** max(attempts - 1, 0), DELIVERY_BACKOFF_CAP_SECONDS)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def endpoint_signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The current secret, and during 24 h after a rotation the previous one too."""
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        keys.append(endpoint.previous_secret)
    return keys


def delivery_attempt(*, delivery_id: str, manual: bool = False) -> EventDelivery | None:
    """Makes one attempt of a due delivery; None when it is not due (or taken by another worker).

    The delivery is claimed with one conditional UPDATE (a lease), the POST is
    made outside any transaction, then the attempt is logged and the next one
    scheduled with exponential backoff until DELIVERY_RETRY_WINDOW has passed.
    ``manual`` (a merchant's retry or test) also sends to a disabled endpoint.
    Side effect: an endpoint failing for ENDPOINT_DISABLE_AFTER is disabled and its merchant mailed.
    """
    now = timezone.now()
    claimed = EventDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=DELIVERY_LEASE_SECONDS), attempts=F("attempts") + 1)
    if not claimed:
        return None
    delivery = EventDelivery.objects.select_related("event", "endpoint", "endpoint__merchant").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = json.dumps(delivery.event.payload, separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    gone = ""
    if endpoint is not None and endpoint.deleted_at is not None:
        gone = "The endpoint was deleted; nothing sent."
    elif endpoint is not None and not endpoint.enabled and not manual:
        gone = "The endpoint is disabled; nothing sent."
    if gone:
        result = webhooks.SendResult(None, gone, 0)
    else:
        keys = endpoint_signing_secrets(endpoint, now=now) if endpoint is not None else [settings.ORDER_EVENTS_SECRET]
        result = webhooks.send(
            url=delivery.url,
            body=body,
            headers=webhooks.headers_for(secrets_=keys, msg_id=delivery.event_id, body=body, timestamp=timestamp),
            # Staff configured ORDER_EVENTS_URL themselves; merchant URLs are guarded.
            allow_private=endpoint is None or webhooks.private_targets_allowed(),
        )
    finished = timezone.now()
    changes: dict[str, Any] = {"last_status_code": result.status_code, "last_error": result.error[:500]}
    next_retry_at = None
    if result.ok:
        changes.update(status=DeliveryStatus.SUCCEEDED, delivered_at=finished)
    elif gone or finished - delivery.created_at >= DELIVERY_RETRY_WINDOW:
        changes.update(status=DeliveryStatus.FAILED)
    else:
        next_retry_at = finished + delivery_backoff(delivery.attempts)
        changes.update(next_attempt_at=next_retry_at)
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            attempt=delivery.attempts,
            status_code=result.status_code,
            error=result.error[:500],
            duration_ms=result.duration_ms,
            webhook_timestamp=None if gone else timestamp,
            address=result.address[:64],
            response_excerpt=result.response_excerpt[:500],
            next_retry_at=next_retry_at,
            created_at=finished,
        )
        EventDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**changes)
        metrics.count_delivery_on_commit(outcome=changes.get("status", "retrying"))
        if endpoint is not None and not gone:
            _endpoint_health(endpoint, ok=result.ok, now=finished)
    if not result.ok:
        logger.info(
            "order event delivery failed",
            extra={"delivery": delivery.pk, "attempt": delivery.attempts, "error": result.error},
        )
    delivery.refresh_from_db()
    return delivery


def _endpoint_health(endpoint: WebhookEndpoint, *, ok: bool, now: datetime) -> None:
    """A success clears the failure streak; a streak of ENDPOINT_DISABLE_AFTER disables the endpoint (mailed once)."""
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if ok:
        endpoints.filter(failing_since__isnull=False).update(failing_since=None)
        return
    endpoints.filter(failing_since__isnull=True).update(failing_since=now)
    disabled = endpoints.filter(enabled=True, failing_since__lte=now - ENDPOINT_DISABLE_AFTER).update(
        enabled=False, disabled_reason="Every delivery failed for 5 days."
    )
    if disabled:
        audit_record(
            actor=None, action="webhook_endpoint.disable", object_type="webhook_endpoint", object_id=endpoint.pk
        )
        merchant = endpoint.merchant
        transaction.on_commit(lambda: _mail_disabled(endpoint_id=endpoint.pk, url=endpoint.url, to=merchant.email))


def _mail_disabled(*, endpoint_id: str, url: str, to: str) -> None:
    mail_send_once(
        key=f"webhook-endpoint-disabled:{endpoint_id}",
        to=to,
        template="webhook_disabled",
        context={"endpoint_id": endpoint_id, "url": url, "days": ENDPOINT_DISABLE_AFTER.days},
    )


def delivery_log_prune(*, now: datetime | None = None) -> int:
    """Forgets attempts older than DELIVERY_LOG_KEEP (and finished deliveries and pings as old); returns how many."""
    cutoff = (now or timezone.now()) - DELIVERY_LOG_KEEP
    removed, _ = DeliveryAttempt.objects.filter(created_at__lt=cutoff).delete()
    old = EventDelivery.objects.filter(created_at__lt=cutoff).exclude(status=DeliveryStatus.PENDING)
    old.filter(attempt_log__isnull=True).delete()
    OrderEvent.objects.filter(type=OrderEventType.PING, created_at__lt=cutoff, deliveries__isnull=True).delete()
    return removed


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Ids of pending deliveries whose next attempt is due."""
    now = now or timezone.now()
    return list(
        EventDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def events_undispatched(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> list[str]:
    """Events whose after-commit fan-out never ran (a lost task, a broker outage)."""
    return list(
        OrderEvent.objects.filter(dispatched_at__isnull=True, created_at__lt=timezone.now() - older_than)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


def delivery_redeliver(*, delivery_id: str, actor: User | None, enqueue: bool = True) -> None:
    """Staff: makes a delivery due again now, whatever its status, and (``enqueue``)
    queues its attempt after commit; audited. Used by the admin action."""
    with transaction.atomic():
        updated = EventDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
        )
        if not updated:
            return
        audit_record(actor=actor, action="order_event.redeliver", object_type="event_delivery", object_id=delivery_id)

        def send() -> None:
            task_named(DELIVER_TASK).delay(delivery_id)

        if enqueue:
            transaction.on_commit(send)
