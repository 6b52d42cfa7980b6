"""Stripe webhooks: dj-stripe verifies the signature, we claim the event and hand it to a task.

The request does one insert (the event's row, keyed by its id) and nothing
slow: no Stripe call, no domain work. The row is claimed with one
``INSERT … ON CONFLICT DO NOTHING``, so concurrent duplicate deliveries agree
on one winner; the work runs after commit in ``payments.tasks.process_stripe_event``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction

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


def _claim(event: StripeEvent) -> bool:
    """Inserts the event's row unless its id is there already; True when this delivery claimed it.

    One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` round trip (PostgreSQL and
    SQLite): a concurrent duplicate waits for the first insert to commit, then
    inserts nothing, so exactly one delivery ever claims an event id.
    """
    fields = StripeEvent._meta.concrete_fields
    quote = connection.ops.quote_name
    table = quote(StripeEvent._meta.db_table)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    pk = quote(str(StripeEvent._meta.pk.column))  # type: ignore[union-attr]
    # Table and column names are the model's own; every value is a parameter.
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT ({pk}) DO NOTHING RETURNING {pk}"  # noqa: S608
    values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone() is not None


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
    trigger.processed = True
    if not _claim(event):
        # A duplicate delivery: the first one owns the work.
        logger.info("duplicate stripe event", extra={"event_id": event_id, "type": event_type})
        return
    if handled:
        from payments.tasks import process_stripe_event

        transaction.on_commit(lambda: process_stripe_event.delay(event_id))
