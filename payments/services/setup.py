"""Stripe's side of the platform's setup: dj-stripe's key and account rows and the webhook endpoint.

Idempotent; takes no row locks (run by ``manage.py setup_stripe`` and the demo).
"""

from __future__ import annotations

import requests
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from djstripe.models import WebhookEndpoint

from payments import gateway

LOCAL_ACCOUNT_ID = "acct_local"
WEBHOOK_ENDPOINT_ID = "we_platform"


def stripe_setup(*, base_url: str = "http://127.0.0.1:8000", register: bool = True) -> tuple[WebhookEndpoint, str]:
    """Prepares dj-stripe's rows and the webhook endpoint; idempotent.

    Returns the dj-stripe WebhookEndpoint and its URL path. Against the local
    fake it creates the owner Account row dj-stripe cannot fetch there and
    registers the endpoint with the fake so it delivers events.
    """
    from djstripe.models import Account, APIKey

    secret_key = settings.STRIPE_SECRET_KEY
    local = gateway.using_local_fake()
    with transaction.atomic():
        apikey, _ = APIKey.objects.get_or_create_by_api_key(secret_key)
        if local:
            account, _ = Account.objects.get_or_create(
                id=LOCAL_ACCOUNT_ID,
                defaults={"livemode": False, "stripe_data": {"id": LOCAL_ACCOUNT_ID, "object": "account"}},
            )
            if apikey.djstripe_owner_account_id != account.id:
                apikey.djstripe_owner_account = account
                apikey.save()
    if not local and apikey.djstripe_owner_account_id is None:
        apikey.refresh_account()

    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.filter(id=WEBHOOK_ENDPOINT_ID).first()
        if endpoint is None:
            endpoint = WebhookEndpoint(
                id=WEBHOOK_ENDPOINT_ID,
                livemode=settings.STRIPE_LIVE_MODE,
                enabled_events=["*"],
                status="enabled",
                api_version="",
                url=base_url,
            )
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
        endpoint.url = base_url.rstrip("/") + path
        endpoint.secret = settings.STRIPE_WEBHOOK_SECRET
        # No owner account: dj-stripe then takes the default key without two look-ups per
        # webhook request (our callback needs neither the account nor a key).
        endpoint.djstripe_owner_account_id = None
        endpoint.djstripe_tolerance = settings.DJSTRIPE_WEBHOOK_TOLERANCE
        endpoint.save()

    if local and register:
        response = requests.post(
            f"{settings.STRIPE_API_BASE}/_config/webhooks/{endpoint.id}",
            data={"url": endpoint.url, "secret": endpoint.secret},
            timeout=settings.STRIPE_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
    return endpoint, path
