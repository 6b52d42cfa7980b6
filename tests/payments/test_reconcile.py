"""``manage.py reconcile``: matches with Stripe, applies events we never received, settles external refunds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from payments.models import Payment, ReconcileItem, ReconcileRun, Refund
from payments.services.reconcile import IDEMPOTENCY_WINDOW, payment_reconcile
from tests.conftest import client_for
from tests.faults.proxy import FaultProxy
from tests.payments.test_refunds import _card_order
from tests.payments.test_webhooks import _balance, _charged_deposit_unseen
from tests.wallets.conftest import verify
from wallets.models import Deposit

pytestmark = pytest.mark.stripe


def reconcile() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile", "--since", f"{timezone.now():%Y-%m-%d}", stdout=out, stderr=StringIO())
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_reconcile_when_all_matches_then_exit_0_and_run_recorded(fake_stripe, customer, merchant):
    _card_order(fake_stripe, customer, merchant)

    code, output = reconcile()

    assert code == 0, output
    run = ReconcileRun.objects.get()
    assert run.mismatched == 0 and run.matched >= 2 and run.finished_at is not None
    assert "matched" in output and "mismatched" in output
    assert ReconcileItem.objects.filter(run=run, object_type="card_clearing", outcome="matched").exists()


def test_reconcile_when_success_event_never_received_then_applied_once(fake_stripe, customer):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)

    first, output = reconcile()
    again, _ = reconcile()

    assert first == 0 and again == 0, output
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.stripe_payment_intent_id == intent.id
    assert Deposit.objects.get(payment=payment).status == "succeeded"
    assert _balance(customer) == 2500
    run = ReconcileRun.objects.order_by("started_at").first()
    assert run is not None and run.fixed >= 1
    assert verify()[0] == 0


def test_reconcile_when_refund_made_in_stripe_dashboard_then_recorded_external(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    payment = Payment.objects.get(pk=order.payment_id)
    assert payment.stripe_payment_intent_id is not None
    stripe.Refund.create(payment_intent=payment.stripe_payment_intent_id, amount=300)

    code, output = reconcile()

    assert code == 0, output
    assert Refund.objects.get(payment=payment).external
    item = ReconcileItem.objects.get(object_type="payment", object_id=payment.pk)
    assert item.outcome == "fixed" and item.stripe == "('succeeded', 300)"
    assert verify()[0] == 0


def test_reconcile_when_our_record_disagrees_then_exit_1_naming_the_field(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    Payment.objects.filter(pk=order.payment_id).update(amount=1001)

    code, output = reconcile()

    assert code == 1
    item = ReconcileItem.objects.get(outcome="mismatched", object_type="payment")
    assert item.object_id == order.payment_id and item.field == "amount"
    assert item.ours == "1001" and item.stripe == "1000"
    assert "unexplained" in output
    assert Payment.objects.get(pk=order.payment_id).flagged_reason.startswith("amount")


def test_reconcile_when_payment_marked_failed_but_stripe_charged_then_settled(fake_stripe, customer, merchant):
    order = _card_order(fake_stripe, customer, merchant)
    Payment.objects.filter(pk=order.payment_id).update(status="failed")

    code, output = reconcile()

    assert code == 0, output
    assert Payment.objects.get(pk=order.payment_id).status == "succeeded"


def test_reconcile_when_since_is_a_datetime_then_only_payments_created_from_then_are_judged(
    fake_stripe, customer, merchant
):
    before = _card_order(fake_stripe, customer, merchant)
    cutoff = timezone.now()
    after = _card_order(fake_stripe, customer, merchant)
    # Only the later one is made wrong: Stripe's event list filters by whole seconds, so the earlier payment's
    # success event may fall in the window and settle it, or not, and the card-clearing check with it.
    Payment.objects.filter(pk=after.payment_id).update(status="failed")

    call_command("reconcile", "--since", cutoff.isoformat(), stdout=StringIO(), stderr=StringIO())

    run = ReconcileRun.objects.get()
    assert run.since == cutoff
    judged = set(ReconcileItem.objects.filter(run=run, object_type="payment").values_list("object_id", flat=True))
    assert judged == {after.payment_id} and before.payment_id not in judged
    assert Payment.objects.get(pk=after.payment_id).status == "succeeded"


def test_reconcile_when_since_is_neither_a_day_nor_a_datetime_then_command_error():
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("reconcile", "--since", "yesterday", stdout=StringIO(), stderr=StringIO())


def test_reconcile_task_is_scheduled_daily(settings):
    tasks = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "payments.tasks.reconcile_daily" in tasks


# --- a card payment whose PaymentIntent id we never learned (our create call's answer was lost) -------------


@contextlib.contextmanager
def _answers_lost(fake_stripe: Any) -> Iterator[FaultProxy]:
    """Stripe gets every call and acts on it, but each answer is lost: a fault proxy resets the connection."""
    upstream = urlsplit(fake_stripe.url)
    proxy = FaultProxy(upstream.hostname or "127.0.0.1", upstream.port or 80).start()
    proxy.set("reset")
    saved = stripe.api_base
    stripe.api_base = proxy.url
    try:
        yield proxy
    finally:
        stripe.api_base = saved
        proxy.stop()


def _deposit_answer_lost(fake_stripe: Any, customer: Any, *, reaches_stripe: bool) -> Payment:
    pm = fake_stripe.attach_card(customer)
    body = {"amount": 2500, "payment_method": pm}
    with _answers_lost(fake_stripe) if reaches_stripe else fake_stripe.unreachable():
        response = client_for(customer).post("/api/v1/wallet/deposits", body, format="json")
    assert response.status_code == 502, response.content
    payment = Payment.objects.get(user=customer)
    assert payment.status == "processing" and payment.stripe_payment_intent_id is None
    return payment


def _intents_naming(payment: Payment) -> list[tuple[str, str]]:
    """Every PaymentIntent at Stripe with this payment in its metadata: (id, status)."""
    found: Any = stripe.PaymentIntent.search(query=f"metadata['payment_id']:'{payment.pk}'")
    return [(intent.id, intent.status) for intent in found.data]


def test_reconcile_when_our_create_reached_stripe_but_its_answer_was_lost_then_that_intent_is_canceled_there(
    fake_stripe, customer, settings
):
    payment = _deposit_answer_lost(fake_stripe, customer, reaches_stripe=True)
    settings.STRIPE_RECONCILE_AFTER_SECONDS = 0  # in flight long enough to be settled
    [(made, status)] = _intents_naming(payment)
    assert status == "requires_confirmation"

    code, output = reconcile()

    assert code == 0, output
    payment.refresh_from_db()
    assert payment.status == "canceled" and payment.stripe_payment_intent_id == made
    assert _intents_naming(payment) == [(made, "canceled")]  # the same intent, learned: no second one made
    assert Deposit.objects.get(payment=payment).status != "succeeded"
    assert _balance(customer) == 0
    assert verify()[0] == 0


def test_reconcile_when_our_create_never_reached_stripe_then_canceled_and_nothing_left_charging(
    fake_stripe, customer, settings
):
    payment = _deposit_answer_lost(fake_stripe, customer, reaches_stripe=False)
    settings.STRIPE_RECONCILE_AFTER_SECONDS = 0
    assert _intents_naming(payment) == []

    code, output = reconcile()

    assert code == 0, output
    payment.refresh_from_db()
    assert payment.status == "canceled"
    # Asking again with the create's key made the intent the first call never did; it is canceled at once.
    assert [status for _, status in _intents_naming(payment)] == ["canceled"]
    assert _balance(customer) == 0
    assert verify()[0] == 0


def test_reconcile_when_the_lost_create_is_older_than_the_idempotency_window_then_found_by_metadata(
    fake_stripe, customer
):
    payment = _deposit_answer_lost(fake_stripe, customer, reaches_stripe=True)
    [(made, _)] = _intents_naming(payment)
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - IDEMPOTENCY_WINDOW - timedelta(hours=2))

    settled = payment_reconcile(payment_id=payment.pk)

    assert settled.status == "canceled" and settled.stripe_payment_intent_id == made
    assert _intents_naming(payment) == [(made, "canceled")]
    assert verify()[0] == 0


def test_reconcile_when_older_than_the_idempotency_window_and_stripe_has_none_then_canceled_without_creating_one(
    fake_stripe, customer
):
    payment = _deposit_answer_lost(fake_stripe, customer, reaches_stripe=False)
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - IDEMPOTENCY_WINDOW - timedelta(hours=2))

    settled = payment_reconcile(payment_id=payment.pk)

    assert settled.status == "canceled" and settled.stripe_payment_intent_id is None
    assert _intents_naming(payment) == []


def test_reconcile_when_a_payment_is_in_flight_for_less_than_the_settle_delay_then_left_to_its_request(
    fake_stripe, customer
):
    payment = _deposit_answer_lost(fake_stripe, customer, reaches_stripe=True)  # just now: its request may be alive

    code, output = reconcile()

    assert code == 0, output
    payment.refresh_from_db()
    assert payment.status == "processing" and payment.stripe_payment_intent_id is None
    item = ReconcileItem.objects.get(object_type="payment", object_id=payment.pk)
    assert item.outcome == "matched" and item.note.startswith("in flight for less than")
    assert [status for _, status in _intents_naming(payment)] == ["requires_confirmation"]  # not touched


# --- a card refund left pending (Stripe did not answer when it was asked) ------------------------------------


def _refund_left_pending(fake_stripe: Any, customer: Any, merchant: Any) -> Refund:
    order = _card_order(fake_stripe, customer, merchant)
    with fake_stripe.unreachable():
        response = client_for(merchant).post("/api/v1/refunds", {"order": order.pk, "amount": 300}, format="json")
    assert response.status_code == 502, response.content
    refund = Refund.objects.get(payment_id=order.payment_id)
    assert refund.status == "pending"
    return refund


def test_reconcile_when_a_card_refund_is_pending_then_card_clearing_counts_its_posted_reversal(
    fake_stripe, customer, merchant
):
    refund = _refund_left_pending(fake_stripe, customer, merchant)  # younger than STRIPE_RECONCILE_AFTER_SECONDS

    code, output = reconcile()

    assert code == 0, output
    assert Refund.objects.get(pk=refund.pk).status == "pending"  # its request may still be asking Stripe
    clearing = ReconcileItem.objects.get(object_type="card_clearing")
    assert (clearing.outcome, clearing.ours, clearing.stripe) == ("matched", "-700", "-700")


def test_reconcile_when_a_card_refund_was_left_pending_then_asked_of_stripe_again_and_settled(
    fake_stripe, customer, merchant, settings
):
    refund = _refund_left_pending(fake_stripe, customer, merchant)
    settings.STRIPE_RECONCILE_AFTER_SECONDS = 0

    code, output = reconcile()

    assert code == 0, output
    refund.refresh_from_db()
    assert refund.status == "succeeded" and refund.stripe_refund_id
    item = ReconcileItem.objects.get(object_type="refund", object_id=refund.pk)
    assert (item.outcome, item.ours, item.stripe) == ("fixed", "pending", "succeeded")
    intent_id = refund.payment.stripe_payment_intent_id
    assert intent_id is not None
    assert [r.amount for r in stripe.Refund.list(payment_intent=intent_id).data] == [300]
    again, _ = reconcile()
    assert again == 0
    assert verify()[0] == 0
