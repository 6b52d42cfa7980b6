"""Reading Stripe's objects: ids of references that may be expanded, plain data, dj-stripe mirrors.

No locks, no writes of ours; the mirrors are best effort for the admin and never fail the caller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from payments import gateway

logger = logging.getLogger(__name__)


def object_id(value: Any) -> str:
    """The id of a Stripe reference that may be an id or an expanded object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(value["id"])
    except (KeyError, TypeError):
        return str(getattr(value, "id", "") or "")


def plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain JSON-able data (what dj-stripe stores)."""
    to_dict = getattr(obj, "to_dict", None)
    if to_dict is not None:
        return to_dict(for_json=True)
    # A shallow dict of a Stripe object (``as_mapping``) still holds Stripe objects inside.
    return json.loads(json.dumps(dict(obj), default=lambda inner: inner.to_dict(for_json=True)))


def as_mapping(obj: Any) -> Mapping[str, Any]:
    return obj if isinstance(obj, Mapping) else dict(obj)


def mirror_intent(intent: Any) -> None:
    """dj-stripe's PaymentIntent and Charge rows, for the admin; best effort, never fatal."""
    from djstripe.models import PaymentIntent

    try:
        with transaction.atomic():  # a savepoint: a failed mirror never poisons the caller's transaction
            PaymentIntent.sync_from_stripe_data(plain(intent), api_key=gateway.api_key())
    except Exception:
        logger.warning("could not mirror payment intent", extra={"intent": intent.get("id")}, exc_info=True)
