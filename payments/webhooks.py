"""Stripe webhooks: verify the delivery, claim its event once, wake the drain task.

A delivery to ``/stripe/webhook/<uuid>/`` (dj-stripe's endpoint URL, served
by ``payments.views.stripe_webhook``) costs one statement: the event's row is
claimed with ``INSERT … ON CONFLICT DO NOTHING``, so concurrent duplicate
deliveries agree on one winner and a duplicate does nothing more. No Stripe
call, no domain work and no per-delivery record besides the event's own row:
``payments.tasks.drain_stripe_events`` applies the pending events in the
background, and one scheduled drain serves every delivery that arrives
before it starts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import stripe
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import BadRequest
from django.db import connection, transaction
from django.http import Http404

from config import metrics
from config.db import insert_unless_taken
from config.queue import task_named
from payments.models import StripeEvent, StripeEventStatus
from payments.services.events import EVENT_HANDLERS, event_not_ours

logger = logging.getLogger(__name__)

# The types the handler table applies; any other event is stored ``ignored``.
HANDLED_EVENT_TYPES = frozenset(EVENT_HANDLERS)

# How long a worker trusts the endpoint secret it read: a rotated or deleted
# endpoint takes effect within this, without a database read per delivery.
SECRET_TTL_SECONDS = 60.0
# Set while a drain is scheduled and has not started; it expires on its own in
# case that drain is lost (the beat sweep still finds events left pending).
DRAIN_FLAG = "payments:stripe-events:drain-scheduled"
DRAIN_FLAG_TTL_SECONDS = 60
# payments.tasks.drain_stripe_events, queued by name: the tasks module is a surface above this one.
DRAIN_TASK = "payments.tasks.drain_stripe_events"
# Namespace of the advisory locks that keep two workers from applying one event together.
APPLY_LOCK_CLASS = 0x53_45  # "SE": the advisory-lock class of applying one event

_secrets: dict[UUID, tuple[float, str]] = {}


def endpoint_secret(endpoint_uuid: UUID) -> str:
    """The signing secret of dj-stripe's ``WebhookEndpoint`` with this uuid; 404 when there is none."""
    now = time.monotonic()
    remembered = _secrets.get(endpoint_uuid)
    if remembered is not None and remembered[0] > now:
        return remembered[1]
    from djstripe.models import WebhookEndpoint

    secret = WebhookEndpoint.objects.filter(djstripe_uuid=endpoint_uuid).values_list("secret", flat=True).first()
    if secret is None:
        _secrets.pop(endpoint_uuid, None)
        raise Http404("No such webhook endpoint.")
    _secrets[endpoint_uuid] = (now + SECRET_TTL_SECONDS, secret)
    return secret


def _verified_event(body: bytes, signature: str, secret: str) -> dict[str, Any]:
    """The delivered event once its ``Stripe-Signature`` proves it came from Stripe, recently."""
    try:
        payload = body.decode("utf-8")
        # A signature older than this is a replay (the same tolerance dj-stripe's endpoint row carries).
        stripe.WebhookSignature.verify_header(payload, signature, secret, settings.DJSTRIPE_WEBHOOK_TOLERANCE)
    except (UnicodeDecodeError, stripe.SignatureVerificationError) as exc:
        logger.warning("stripe webhook refused: %s", type(exc).__name__)
        raise BadRequest("The Stripe-Signature header is wrong or too old for this body.") from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise BadRequest("The body is not JSON.") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        raise BadRequest("The body is not a Stripe event.")
    return event


def _claim(event: StripeEvent) -> bool:
    """Inserts the event's row unless its id is there already; True when this delivery claimed it."""
    return metrics.stripe_event_claimed(insert_unless_taken(event, unique=("id",)))


def stripe_event_receive(*, endpoint_uuid: UUID, body: bytes, signature: str | None) -> bool:
    """Verifies one delivery and claims its event; True when this delivery was the event's first.

    Raises ``BadRequest`` (nothing stored) for a missing, wrong or stale
    signature or a body that is no event, ``Http404`` for an unknown endpoint.
    Side effect: a first delivery of a handled type wakes the drain after commit.
    """
    if not signature:
        raise BadRequest("The Stripe-Signature header is missing.")
    data = _verified_event(body, signature, endpoint_secret(endpoint_uuid))
    event_type = str(data.get("type") or "")
    obj = (data.get("data") or {}).get("object") or {}
    foreign = event_not_ours(data)
    handled = event_type in HANDLED_EVENT_TYPES and not foreign
    event = StripeEvent(
        id=data["id"][:255],
        type=event_type[:128],
        object_id=str(obj.get("id") or "")[:255],
        livemode=bool(data.get("livemode")),
        payload=obj if handled else {},
        status=StripeEventStatus.PENDING if handled else StripeEventStatus.IGNORED,
        last_error=foreign,
    )
    if foreign:
        logger.warning("stripe event not ours, recorded and ignored", extra={"event_id": event.id, "why": foreign})
    if not _claim(event):
        logger.info("duplicate stripe event", extra={"event_id": event.id, "type": event_type})
        return False
    if handled:
        transaction.on_commit(drain_soon)
    return True


def drain_soon() -> None:
    """Schedules a drain of the pending events unless one is scheduled and has not started yet.

    Never raises: the event's row is committed already, and answering Stripe
    with an error would only bring a redelivery that claims nothing. An event
    whose drain could not be scheduled is applied by the next delivery's
    drain or by the beat sweep (``retry_failed_events``).
    """
    try:
        if cache.add(DRAIN_FLAG, 1, DRAIN_FLAG_TTL_SECONDS):
            try:
                task_named(DRAIN_TASK).delay()
            except Exception:
                cache.delete(DRAIN_FLAG)
                raise
    except Exception:
        logger.warning("could not schedule the stripe event drain", exc_info=True)


@contextmanager
def event_apply_lock(event_id: str) -> Iterator[bool]:
    """Yields whether this worker may apply ``event_id`` now; held until the block ends.

    A PostgreSQL session advisory lock (taken without waiting, kept across the
    handler's own transactions and released if the worker dies), so drains
    running side by side, the retry task and the admin's replay never apply
    one event at the same time.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [APPLY_LOCK_CLASS, event_id])
        row = cursor.fetchone()
    if not (row and row[0]):
        yield False
        return
    try:
        yield True
    finally:
        _apply_unlock([event_id])


@contextmanager
def pending_events_locked(*, limit: int, skip: Sequence[str] = ()) -> Iterator[list[str]]:
    """Yields up to ``limit`` pending events, oldest first, each under ``event_apply_lock``'s lock.

    Events another worker holds are passed over, not waited for (so drains
    side by side take different events), as are the ids in ``skip``. One
    statement takes the locks and one releases them when the block ends.
    """
    pending = (
        StripeEvent.objects.filter(status=StripeEventStatus.PENDING)
        .exclude(pk__in=list(skip))
        .order_by("received_at")
        .values_list("id", flat=True)
    )
    # The volatile lock call stays outside the subquery (it has a LIMIT, so nothing is pushed into
    # it), and the outer LIMIT stops reading rows once it has enough: no row past them is locked.
    # The subquery is the ORM's own SQL; every value is a parameter.
    candidates, params = pending[: limit * 10].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM ({candidates}) AS pending WHERE pg_try_advisory_lock(%s, hashtext(id)) LIMIT %s",  # noqa: S608
            [*params, APPLY_LOCK_CLASS, limit],
        )
        event_ids = [row[0] for row in cursor.fetchall()]
    try:
        yield event_ids
    finally:
        if event_ids:
            _apply_unlock(event_ids)


def _apply_unlock(event_ids: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_unlock(%s, hashtext(id)) FROM unnest(%s::text[]) AS id", [APPLY_LOCK_CLASS, event_ids]
        )
