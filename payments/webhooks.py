"""Stripe webhooks: dj-stripe verifies the signature, we claim the event and hand it to a task.

The request does one insert (the event's row, keyed by its id) and nothing
slow: no Stripe call, no domain work. The row is claimed in its own savepoint,
so concurrent duplicate deliveries agree on one winner; the work runs after
commit in ``payments.tasks.process_stripe_event``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from payments.models import StripeEvent, StripeEventStatus

logger = logging.getLogger(__name__)

HANDLED_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "charge.refunded",
        "charge.refund.updated",
        "charge.dispute.created",
        "charge.dispute.closed",
    }
)

_SECRET_OVERRIDE_HEADER = "x-djstripe-webhook-secret"


def drop_secret_override(sender: Any, instance: Any, **kwargs: Any) -> None:
    """dj-stripe lets a request choose its own signing secret when DEBUG is on: never allow it."""
    headers = instance.headers or {}
    if any(name.lower() == _SECRET_OVERRIDE_HEADER for name in headers):
        instance.headers = {k: v for k, v in headers.items() if k.lower() != _SECRET_OVERRIDE_HEADER}


def webhook_received(trigger: Any, api_key: str | None = None) -> None:
    """dj-stripe's ``WEBHOOK_EVENT_CALLBACK``: runs inside its transaction once the signature is valid."""
    body = trigger.json_body
    event_id = body.get("id")
    event_type = body.get("type") or ""
    if not isinstance(event_id, str) or not event_id:
        trigger.processed = True
        return
    obj = (body.get("data") or {}).get("object") or {}
    handled = event_type in HANDLED_EVENT_TYPES
    event = StripeEvent(
        id=event_id[:255],
        type=event_type[:128],
        object_id=str(obj.get("id") or "")[:255],
        livemode=bool(body.get("livemode")),
        payload=obj if handled else {},
        status=StripeEventStatus.PENDING if handled else StripeEventStatus.IGNORED,
    )
    try:
        with transaction.atomic():
            event.save(force_insert=True)
    except IntegrityError:
        # A duplicate delivery: the first one owns the work.
        logger.info("duplicate stripe event", extra={"event_id": event_id, "type": event_type})
        trigger.processed = True
        return
    trigger.processed = True
    if handled:
        from payments.tasks import process_stripe_event

        transaction.on_commit(lambda: process_stripe_event.delay(event_id))
