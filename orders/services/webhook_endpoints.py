"""Merchants' webhook endpoints for their order events: register, change, rotate the secret, test, retry, delete.

No row locks: a merchant's endpoints are counted inside the creating transaction; deliveries are leased by events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from config.errors import PermissionDeniedError, ValidationFailed
from orders import webhooks
from orders.errors import TooManyWebhookEndpoints, WebhookEndpointNotFound
from orders.models import DeliveryStatus, EventDelivery, OrderEvent, OrderEventType, WebhookEndpoint
from orders.services.events import delivery_attempt

MAX_WEBHOOK_ENDPOINTS = 10
ROTATION_OVERLAP = timedelta(hours=24)
# What an endpoint can subscribe to (a ping goes to whichever endpoint is tested).
SUBSCRIBABLE_EVENTS = tuple(t for t in OrderEventType.values if t != OrderEventType.PING)


class WebhookDeliveryNotFound(WebhookEndpointNotFound):
    default_message = "No such delivery."


def _events_clean(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return []
    chosen = [str(e) for e in events]
    unknown = sorted(set(chosen) - set(SUBSCRIBABLE_EVENTS))
    if unknown:
        raise ValidationFailed(
            f"Unknown event types: {', '.join(unknown)}; choose from {', '.join(SUBSCRIBABLE_EVENTS)}.",
            param="events",
        )
    return sorted(set(chosen), key=SUBSCRIBABLE_EVENTS.index)


def _own(merchant: User, endpoint_id: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, merchant=merchant, deleted_at__isnull=True).first()
    if endpoint is None:
        raise WebhookEndpointNotFound(param="id")
    return endpoint


def webhook_endpoint_create(*, merchant: User, url: str, events: Iterable[str] | None = None) -> WebhookEndpoint:
    """Registers a URL for the merchant's order events (``events`` empty = all); the returned
    endpoint carries its signing secret (show it once). Raises WebhookUrlRefused (400)."""
    if not merchant.is_merchant:
        raise PermissionDeniedError("Only merchants can register webhook endpoints.")
    url = webhooks.check_url(url.strip(), allow_private=webhooks.private_targets_allowed())
    chosen = _events_clean(events)
    with transaction.atomic():
        live = WebhookEndpoint.objects.filter(merchant=merchant, deleted_at__isnull=True).count()
        if live >= MAX_WEBHOOK_ENDPOINTS:
            raise TooManyWebhookEndpoints(param="url")
        endpoint = WebhookEndpoint(merchant=merchant, url=url, events=chosen, secret=webhooks.secret_new())
        endpoint.save(force_insert=True)
        audit_record(
            actor=merchant,
            action="webhook_endpoint.create",
            object_type="webhook_endpoint",
            object_id=endpoint.pk,
            data={"url": url, "events": chosen},
        )
    return endpoint


def webhook_endpoint_update(
    *,
    merchant: User,
    endpoint_id: str,
    url: str | None = None,
    events: Iterable[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Changes an endpoint's URL, event filter or enabled flag; enabling clears the failure streak."""
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = webhooks.check_url(url.strip(), allow_private=webhooks.private_targets_allowed())
    if events is not None:
        changes["events"] = _events_clean(events)
    if enabled is not None:
        changes["enabled"] = enabled
        if enabled:
            changes.update(failing_since=None, disabled_reason="")
    with transaction.atomic():
        endpoint = _own(merchant, endpoint_id)
        if changes:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**changes)
            audit_record(
                actor=merchant,
                action="webhook_endpoint.update",
                object_type="webhook_endpoint",
                object_id=endpoint.pk,
                data={k: v for k, v in changes.items() if k in ("url", "events", "enabled")},
            )
            endpoint.refresh_from_db()
    return endpoint


def webhook_endpoint_rotate_secret(*, merchant: User, endpoint_id: str) -> WebhookEndpoint:
    """A new secret (returned on the endpoint, show it once); the current one keeps signing beside it for 24 h."""
    with transaction.atomic():
        endpoint = _own(merchant, endpoint_id)
        now = timezone.now()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            secret=webhooks.secret_new(),
            previous_secret=endpoint.secret,
            previous_secret_expires_at=now + ROTATION_OVERLAP,
        )
        audit_record(
            actor=merchant,
            action="webhook_endpoint.rotate_secret",
            object_type="webhook_endpoint",
            object_id=endpoint.pk,
        )
        endpoint.refresh_from_db()
    return endpoint


def webhook_endpoint_delete(*, merchant: User, endpoint_id: str) -> None:
    """Stops deliveries to one of the merchant's endpoints (kept for its history). Raises WebhookEndpointNotFound."""
    with transaction.atomic():
        updated = WebhookEndpoint.objects.filter(pk=endpoint_id, merchant=merchant, deleted_at__isnull=True).update(
            deleted_at=timezone.now()
        )
        if not updated:
            raise WebhookEndpointNotFound(param="id")
        audit_record(
            actor=merchant, action="webhook_endpoint.delete", object_type="webhook_endpoint", object_id=endpoint_id
        )


def webhook_endpoint_test(*, merchant: User, endpoint_id: str) -> EventDelivery:
    """Sends a ``ping`` event to the endpoint now (also when disabled); returns its delivery after the attempt.

    Call outside a transaction: the POST runs after the event commits."""
    endpoint = _own(merchant, endpoint_id)
    now = timezone.now()
    with transaction.atomic():
        event = OrderEvent(order=None, merchant=merchant, type=OrderEventType.PING, created_at=now, dispatched_at=now)
        event.key = f"ping:{event.pk}"
        event.payload = {
            "id": event.pk,
            "type": OrderEventType.PING.value,
            "created": int(now.timestamp()),
            "data": {"object": {"object": "webhook_endpoint", "id": endpoint.pk, "url": endpoint.url}},
        }
        event.save(force_insert=True)
        delivery = EventDelivery.objects.create(
            event=event, endpoint=endpoint, url=endpoint.url, next_attempt_at=now, created_at=now
        )
    return delivery_attempt(delivery_id=delivery.pk, manual=True) or delivery


def webhook_delivery_retry(*, merchant: User, endpoint_id: str, delivery_id: str) -> EventDelivery:
    """Sends one of the endpoint's deliveries again now (the same event, so the same ``webhook-id``)."""
    endpoint = _own(merchant, endpoint_id)
    with transaction.atomic():
        updated = EventDelivery.objects.filter(pk=delivery_id, endpoint=endpoint).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
        )
        if not updated:
            raise WebhookDeliveryNotFound(param="delivery_id")
        audit_record(actor=merchant, action="order_event.retry", object_type="event_delivery", object_id=delivery_id)
    delivery = delivery_attempt(delivery_id=delivery_id, manual=True)
    return delivery or EventDelivery.objects.get(pk=delivery_id)
