"""Merchants' webhook endpoints for their order events: registering one (with its secret) and deleting it.

No row locks: a merchant's endpoints are counted inside the creating transaction.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from config.errors import PermissionDeniedError
from orders import webhooks
from orders.errors import TooManyWebhookEndpoints, WebhookEndpointNotFound
from orders.models import WebhookEndpoint

MAX_WEBHOOK_ENDPOINTS = 10


def webhook_endpoint_create(*, merchant: User, url: str) -> WebhookEndpoint:
    """Registers a URL for the merchant's order events; the returned endpoint
    carries its signing secret (show it once). Raises WebhookUrlRefused (400)."""
    if not merchant.is_merchant:
        raise PermissionDeniedError("Only merchants can register webhook endpoints.")
    url = webhooks.check_url(url.strip(), allow_private=webhooks.private_targets_allowed())
    with transaction.atomic():
        live = WebhookEndpoint.objects.filter(merchant=merchant, deleted_at__isnull=True).count()
        if live >= MAX_WEBHOOK_ENDPOINTS:
            raise TooManyWebhookEndpoints(param="url")
        endpoint = WebhookEndpoint(merchant=merchant, url=url, secret="whsec_" + secrets.token_hex(24))
        endpoint.save(force_insert=True)
        audit_record(
            actor=merchant,
            action="webhook_endpoint.create",
            object_type="webhook_endpoint",
            object_id=endpoint.pk,
            data={"url": url},
        )
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
