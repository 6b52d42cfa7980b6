"""Three-way reconciliation with Stripe (contract section 8): payments and refunds, the card-clearing account, events.

Call outside a transaction; what it settles goes through the same services (``payment_sync``, the refund services,
``stripe_event_process``), each with its own locks. Every compared object becomes a ``ReconcileItem`` of the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import stripe
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from config.db import insert_unless_taken
from config.errors import DomainError
from payments import gateway
from payments.models import (
    Dispute,
    DisputeStatus,
    Payment,
    PaymentMethodType,
    PaymentStatus,
    ReconcileItem,
    ReconcileOutcome,
    ReconcileRun,
    Refund,
    RefundStatus,
    StripeEvent,
    StripeEventStatus,
)
from payments.services.charges import intent_outcome
from payments.services.events import EVENT_HANDLERS, event_not_ours, stripe_event_process
from payments.services.reconcile import payment_reconcile, refund_reconcile
from payments.services.refunds import stripe_refunds_apply
from payments.stripe_data import as_mapping
from wallets.ledger import platform_account_id
from wallets.models import AccountKind, Posting

logger = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[Iterable[Any], str], Iterable[Any]]


def _no_progress(items: Iterable[T], _label: str) -> Iterable[T]:
    return items


class _Run:
    def __init__(self, since: datetime) -> None:
        self.run = ReconcileRun.objects.create(since=since)
        self.items: list[ReconcileItem] = []

    def add(
        self, object_type: str, object_id: str, outcome: str, field: str = "", ours: Any = "", theirs: Any = "",
        note: str = "",
    ) -> None:  # fmt: skip
        item = ReconcileItem(run=self.run, object_type=object_type, object_id=str(object_id)[:255], outcome=outcome)
        item.field, item.ours, item.stripe, item.note = field[:64], str(ours)[:255], str(theirs)[:255], note[:255]
        self.items.append(item)

    def finish(self) -> ReconcileRun:
        ReconcileItem.objects.bulk_create(self.items, batch_size=500)
        run = self.run
        run.matched = sum(1 for item in self.items if item.outcome == ReconcileOutcome.MATCHED)
        run.fixed = sum(1 for item in self.items if item.outcome == ReconcileOutcome.FIXED)
        run.mismatched = sum(1 for item in self.items if item.outcome == ReconcileOutcome.MISMATCHED)
        run.finished_at = timezone.now()
        run.save(update_fields=["matched", "fixed", "mismatched", "finished_at"])
        return run


def _stripe_events(since: datetime) -> Iterator[Any]:
    """Stripe's events created since ``since``, newest first, page by page (``GET /v1/events``)."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, "created": {"gte": int(since.timestamp())}}
        if after:
            params["starting_after"] = after
        page: Any = gateway.raw_call(stripe.Event.list, **params)
        yield from page.data
        if not page.get("has_more") or not page.data:
            return
        after = page.data[-1].id


def _events(run: _Run, since: datetime, progress: Progress) -> None:
    """Each handled Stripe event of ours: applied already (matched), or claimed and applied now (fixed)."""
    for raw in progress(list(_stripe_events(since)), "events"):
        data: dict[str, Any] = raw.to_dict() if hasattr(raw, "to_dict") else dict(as_mapping(raw))
        event_type = str(data.get("type") or "")
        if event_type not in EVENT_HANDLERS or event_not_ours(data):
            continue
        obj = (data.get("data") or {}).get("object") or {}
        row = StripeEvent(
            id=str(data["id"])[:255], type=event_type[:128], object_id=str(obj.get("id") or "")[:255],
            livemode=bool(data.get("livemode")), payload=dict(obj), status=StripeEventStatus.PENDING,
        )  # fmt: skip
        claimed = insert_unless_taken(row, unique=("id",))
        state = StripeEvent.objects.values_list("status", flat=True).get(pk=row.id)
        if not claimed and state == StripeEventStatus.PROCESSED:
            run.add("event", row.id, ReconcileOutcome.MATCHED)
            continue
        try:
            done = stripe_event_process(event_id=row.id)
        except Exception as exc:  # noqa: BLE001  # any handler failure is recorded on the event and reported, never fatal to the run
            run.add("event", row.id, ReconcileOutcome.MISMATCHED, "status", state, "applied", f"{exc}"[:255])
            continue
        note = "never received: applied now" if claimed else f"was {state}: applied now"
        run.add("event", row.id, ReconcileOutcome.FIXED, "status", state, done.status, note)


_IN_FLIGHT = (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.REQUIRES_PAYMENT_METHOD)


def _in_flight_since() -> datetime:
    """What has been in flight since before this is settled; anything younger may still be inside the request
    that is calling Stripe for it (settling it now would race that request)."""
    return timezone.now() - timedelta(seconds=settings.STRIPE_RECONCILE_AFTER_SECONDS)


def _payment(run: _Run, payment: Payment) -> None:
    before = (payment.status, payment.amount_refunded)
    if payment.status in _IN_FLIGHT and payment.updated_at > _in_flight_since():
        note = f"in flight for less than {settings.STRIPE_RECONCILE_AFTER_SECONDS} s: left to its request"
        run.add("payment", payment.pk, ReconcileOutcome.MATCHED, "status", payment.status, payment.status, note)
        return
    if payment.status in _IN_FLIGHT:
        payment = payment_reconcile(payment_id=payment.pk)
    if not payment.stripe_payment_intent_id:
        outcome = ReconcileOutcome.FIXED if payment.status != before[0] else ReconcileOutcome.MATCHED
        run.add("payment", payment.pk, outcome, "status", before[0], payment.status, "no PaymentIntent at Stripe")
        return
    intent = as_mapping(gateway.raw_call(stripe.PaymentIntent.retrieve, payment.stripe_payment_intent_id))
    stripe_refunds_apply(payment_id=payment.pk)
    _refunds_left_pending(run, payment)
    payment.refresh_from_db()
    theirs, _ = intent_outcome(intent)
    refunded = _stripe_refunded(payment.stripe_payment_intent_id)
    for field, ours, stripe_value in (
        ("amount", payment.amount, intent.get("amount")),
        ("currency", payment.currency, str(intent.get("currency") or "").lower()),
        ("status", payment.status, theirs or payment.status),
        ("amount_refunded", _our_refunded(payment), refunded),
    ):
        if ours != stripe_value:
            run.add("payment", payment.pk, ReconcileOutcome.MISMATCHED, field, ours, stripe_value)
            return
    changed = (payment.status, payment.amount_refunded) != before
    run.add("payment", payment.pk, ReconcileOutcome.FIXED if changed else ReconcileOutcome.MATCHED,
            "status" if changed else "", before, (payment.status, payment.amount_refunded))  # fmt: skip


def _refunds_left_pending(run: _Run, payment: Payment) -> None:
    """Our card refunds of ``payment`` still pending once Stripe's list was applied: each in flight for longer
    than STRIPE_RECONCILE_AFTER_SECONDS is asked of Stripe again with its idempotency key (``refund_reconcile``);
    a younger one is left to its request."""
    pending = Refund.objects.filter(payment=payment, status=RefundStatus.PENDING, updated_at__lte=_in_flight_since())
    for refund_id in pending.order_by("pk").values_list("pk", flat=True):
        note = "left pending: asked Stripe again"
        try:
            refund = refund_reconcile(refund_id=refund_id)
        except DomainError as exc:  # refused by Stripe (released: failed) or Stripe unavailable (still pending)
            refund = Refund.objects.get(pk=refund_id)
            note = f"left pending: {exc}"
        outcome = ReconcileOutcome.MISMATCHED if refund.status == RefundStatus.PENDING else ReconcileOutcome.FIXED
        run.add("refund", refund_id, outcome, "status", RefundStatus.PENDING, refund.status, note)


def _our_refunded(payment: Payment) -> int:
    total = Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).aggregate(t=Sum("amount"))["t"]
    return int(total or 0)


def _stripe_refunded(intent_id: str) -> int:
    listed: Any = gateway.raw_call(stripe.Refund.list, payment_intent=intent_id, limit=100)
    return sum(int(r.get("amount") or 0) for r in listed.data if r.get("status") == "succeeded")


def _clearing(run: _Run) -> None:
    """card_clearing = -(succeeded card payments) + card refunds posted + lost disputes, per currency.

    A card refund's reversal is posted when it is reserved, before Stripe is asked (``refund_apply``), and
    released if Stripe refuses it: the refunds posted are the succeeded ones and those still pending.
    """
    card = Payment.objects.filter(method=PaymentMethodType.CARD, status=PaymentStatus.SUCCEEDED)
    posted = (RefundStatus.SUCCEEDED, RefundStatus.PENDING)
    for currency in card.values_list("currency", flat=True).distinct():
        paid = card.filter(currency=currency).aggregate(t=Sum("amount"))["t"] or 0
        refunded = (
            Refund.objects.filter(
                payment__method=PaymentMethodType.CARD, currency=currency, status__in=posted
            ).aggregate(t=Sum("amount"))["t"]
            or 0
        )
        lost = Dispute.objects.filter(currency=currency, status=DisputeStatus.LOST).aggregate(t=Sum("amount"))["t"] or 0
        account_id = platform_account_id(AccountKind.CARD_CLEARING, currency)
        # Platform accounts keep no balance column (hot rows): their postings are the truth.
        balance = Posting.objects.filter(account_id=account_id).aggregate(t=Sum("amount"))["t"] or 0
        expected = -paid + refunded + lost
        outcome = ReconcileOutcome.MATCHED if balance == expected else ReconcileOutcome.MISMATCHED
        run.add("card_clearing", account_id, outcome, "balance", balance, expected, "ledger vs card payments")


def reconcile_run(*, since: datetime, progress: Progress = _no_progress) -> ReconcileRun:
    """Matches, settles and records; returns the run (``mismatched`` > 0: an unexplained difference remains).

    Events first (an event we never received is applied through ``stripe_event_process``, exactly once
    by its id), then each card payment since ``since`` with its PaymentIntent and refunds (a payment or
    refund left in flight for STRIPE_RECONCILE_AFTER_SECONDS is settled with Stripe's answer), then the
    card-clearing account. A Stripe call that fails for one object is recorded as its mismatch.
    """
    run = _Run(since)
    _events(run, since, progress)
    payments = Payment.objects.filter(method=PaymentMethodType.CARD, created_at__gte=since).order_by("created_at")
    for payment in progress(list(payments), "payments"):
        try:
            _payment(run, payment)
        except stripe.StripeError as exc:
            run.add("payment", payment.pk, ReconcileOutcome.MISMATCHED, "stripe", "", "", f"Stripe: {exc}"[:255])
    _clearing(run)
    return run.finish()
