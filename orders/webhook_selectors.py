"""Reads of merchants' webhook endpoints and their delivery log: what one merchant may see.

Another merchant's endpoint or delivery is not found (404), never forbidden.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from orders.errors import WebhookEndpointNotFound
from orders.models import DeliveryAttempt, EventDelivery, WebhookEndpoint
from orders.services.events import DELIVERY_LOG_KEEP


def webhook_endpoints_of(*, merchant: User) -> QuerySet[WebhookEndpoint]:
    """The merchant's live (not deleted) endpoints, newest first."""
    return WebhookEndpoint.objects.filter(merchant=merchant, deleted_at__isnull=True).order_by("-id")


def webhook_endpoint_of(*, merchant: User, endpoint_id: str) -> WebhookEndpoint:
    """One live endpoint of the merchant; anyone else's is not found."""
    endpoint = webhook_endpoints_of(merchant=merchant).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookEndpointNotFound(param="id")
    return endpoint


def webhook_attempts_of(*, endpoint: WebhookEndpoint) -> QuerySet[DeliveryAttempt]:
    """Every attempt to the endpoint in the last 30 days, newest first, delivery and event joined."""
    since = timezone.now() - DELIVERY_LOG_KEEP
    return (
        DeliveryAttempt.objects.filter(delivery__endpoint=endpoint, created_at__gte=since)
        .select_related("delivery", "delivery__event")
        .order_by("-id")
    )


def webhook_deliveries_pending_of(*, endpoint: WebhookEndpoint) -> QuerySet[EventDelivery]:
    """Deliveries made but not yet attempted (their first try is queued)."""
    return EventDelivery.objects.filter(endpoint=endpoint, attempts=0).select_related("event").order_by("-id")
