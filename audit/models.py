"""Event models of the audit trail: django-pghistory snapshots each tracked row on insert, update and delete.

Triggers catch every write (ORM, bulk ``update()``, the one-statement purchase's raw SQL); the context
(``config.audit``) names the actor, address, request id and reason.
"""

from __future__ import annotations

from typing import Any

import pghistory
from django.db import models

from accounts.models import User
from catalog.models import Product
from orders.models import Order
from payments.models import Dispute, Payment, Refund, StripeEvent
from wallets.models import Withdrawal


def _tracked(model: type[models.Model], name: str, **options: Any) -> Any:
    """An event table ``audit.<name>`` for ``model``: inserts, updates (any change) and deletes."""
    pk = model._meta.pk
    assert pk is not None
    # The snapshot's copy of a public-id primary key is a plain column (PublicIdField would make it a key again).
    attrs = {pk.name: models.CharField(max_length=pk.max_length)} if isinstance(pk, models.CharField) else {}
    trackers = (
        pghistory.InsertEvent(),
        pghistory.UpdateEvent(condition=pghistory.AnyChange(exclude_auto=True)),
        pghistory.DeleteEvent(),
    )
    return pghistory.create_event_model(
        model,
        *trackers,
        app_label="audit",
        model_name=name,
        obj_field=pghistory.ObjForeignKey(db_index=True, db_constraint=False, on_delete=models.DO_NOTHING),
        abstract=False,
        attrs=attrs,
        **options,
    )


# The columns each history keeps (named, so a column another change adds later is tracked once it is
# listed here with its migration of this app, and never breaks the triggers before that). A password hash
# never enters the history; a sign-in (last_login) alone is no change of rights.
UserEvent = _tracked(User, "UserEvent", fields=["id", "email", "role", "first_name", "last_name", "is_active",
                                                 "is_staff", "is_superuser", "created_at"])  # fmt: skip
# Groups and direct permissions of a user: each add and each removal is its own row.
UserGroupEvent: Any = pghistory.create_event_model(
    User.groups.through,
    pghistory.InsertEvent("group.add"),
    pghistory.DeleteEvent("group.remove"),
    app_label="audit",
    model_name="UserGroupEvent",
    obj_field=None,  # type: ignore[arg-type]  # no object: the row names its user
    abstract=False,
)
UserPermissionEvent: Any = pghistory.create_event_model(
    User.user_permissions.through,
    pghistory.InsertEvent("permission.add"),
    pghistory.DeleteEvent("permission.remove"),
    app_label="audit",
    model_name="UserPermissionEvent",
    obj_field=None,  # type: ignore[arg-type]
    abstract=False,
)
ProductEvent = _tracked(Product, "ProductEvent", fields=["id", "merchant", "name", "description", "price", "currency",
                                                       "stock", "is_active", "deleted_at", "created_at",
                                                       "updated_at"])  # fmt: skip
OrderEvent = _tracked(Order, "OrderEvent", fields=["id", "buyer", "merchant", "product", "quantity", "unit_price",
                                                   "amount", "currency", "fee", "merchant_net", "payment_method",
                                                   "status", "payment", "reserved_until", "created_at",
                                                   "updated_at", "paid_at"])  # fmt: skip
PaymentEvent = _tracked(Payment, "PaymentEvent", fields=["id", "user", "kind", "method", "amount", "currency", "status",
                                                         "amount_refunded", "stripe_payment_intent_id",
                                                         "stripe_payment_method_id", "stripe_charge_id", "failure_code",
                                                         "decline_code", "failure_message", "created_at", "updated_at",
                                                         "succeeded_at", "flagged_reason", "flagged_at"])  # fmt: skip
RefundEvent = _tracked(Refund, "RefundEvent", fields=["id", "payment", "amount", "currency", "status", "reason",
                                                      "stripe_refund_id", "requested_by", "failure_message",
                                                      "approved_by", "decided_at", "decision_reason", "fee_reversed",
                                                      "net_reversed", "external", "created_at",
                                                      "updated_at"])  # fmt: skip
WithdrawalEvent = _tracked(Withdrawal, "WithdrawalEvent", fields=["id", "user", "account", "amount", "currency",
                                                                  "status", "reason", "first_approved_by",
                                                                  "first_approved_at", "first_approval_reason",
                                                                  "decided_by", "created_at", "updated_at",
                                                                  "decided_at"])  # fmt: skip
DisputeEvent = _tracked(Dispute, "DisputeEvent", fields=["id", "payment", "stripe_dispute_id", "amount", "held_amount",
                                                         "currency", "status", "reason", "resolved_by", "created_at",
                                                         "resolved_at"])  # fmt: skip
# A Stripe event's status changes (a staff replay among them); not its arrival nor its payload.
StripeEventChange: Any = pghistory.create_event_model(
    StripeEvent,
    pghistory.UpdateEvent(condition=pghistory.AnyChange()),
    app_label="audit",
    model_name="StripeEventChange",
    fields=["id", "type", "status", "attempts", "processed_at"],
    attrs={"id": models.CharField(max_length=255)},
    obj_field=pghistory.ObjForeignKey(db_index=True, db_constraint=False, on_delete=models.DO_NOTHING),
    abstract=False,
)
