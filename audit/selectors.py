"""Reads of the audit trail: one object's history with who, when, where, why and what changed.

Used by the admin's change pages and the customer page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models

from accounts.models import User
from audit.models import (
    DisputeEvent,
    OrderEvent,
    PaymentEvent,
    ProductEvent,
    RefundEvent,
    StripeEventChange,
    UserEvent,
    UserGroupEvent,
    UserPermissionEvent,
    WithdrawalEvent,
)
from catalog.models import Product
from orders.models import Order
from payments.models import Dispute, Payment, Refund, StripeEvent
from wallets.models import Withdrawal

EVENT_MODELS: dict[type[models.Model], type[models.Model]] = {
    User: UserEvent,
    Product: ProductEvent,
    Order: OrderEvent,
    Payment: PaymentEvent,
    Refund: RefundEvent,
    Withdrawal: WithdrawalEvent,
    Dispute: DisputeEvent,
    StripeEvent: StripeEventChange,
}
_NOT_SNAPSHOT = {"pgh_id", "pgh_created_at", "pgh_label", "pgh_obj", "pgh_context"}


@dataclass
class HistoryRow:
    at: datetime
    label: str
    actor: str
    address: str
    request_id: str
    reason: str
    url: str
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)


def _snapshot_fields(event_model: type[models.Model]) -> list[str]:
    return [f.attname for f in event_model._meta.concrete_fields if f.name not in _NOT_SNAPSHOT]


def _rows(events: list[Any], fields: list[str]) -> list[HistoryRow]:
    actor_ids = {(e.pgh_context.metadata or {}).get("user") for e in events if e.pgh_context_id}
    emails = dict(User.objects.filter(pk__in=[a for a in actor_ids if a]).values_list("pk", "email"))
    rows, before = [], None
    for event in events:
        meta = (event.pgh_context.metadata if event.pgh_context_id else None) or {}
        after = {name: getattr(event, name) for name in fields}
        if before is None:
            changes = [(name, None, value) for name, value in after.items()]
        else:
            changes = [(name, before[name], after[name]) for name in fields if before[name] != after[name]]
        before = after
        actor = str(meta.get("user") or "")
        rows.append(
            HistoryRow(
                at=event.pgh_created_at,
                label=event.pgh_label,
                actor=str(emails.get(actor) or actor or "system"),
                address=str(meta.get("address") or ""),
                request_id=str(meta.get("request_id") or ""),
                reason=str(meta.get("reason") or ""),
                url=str(meta.get("url") or ""),
                changes=changes,
            )
        )
    return rows


def object_history(obj: models.Model, *, limit: int = 50) -> list[HistoryRow]:
    """The newest ``limit`` changes of ``obj`` (a tracked model's row), newest first; a user's include
    the groups and permissions given and taken."""
    event_model = EVENT_MODELS.get(type(obj))
    if event_model is None:
        return []
    events = list(
        event_model.objects.filter(pgh_obj_id=obj.pk).select_related("pgh_context").order_by("-pgh_id")[:limit]  # type: ignore[attr-defined]
    )
    rows = _rows(list(reversed(events)), _snapshot_fields(event_model))
    if isinstance(obj, User):
        for through in (UserGroupEvent, UserPermissionEvent):
            links = list(
                through.objects.filter(user_id=obj.pk).select_related("pgh_context").order_by("-pgh_id")[:limit]
            )
            rows += _rows(list(reversed(links)), [f for f in _snapshot_fields(through) if f != "user_id"])
    return sorted(rows, key=lambda row: row.at, reverse=True)[:limit]
