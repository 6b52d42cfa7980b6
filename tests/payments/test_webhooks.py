"""Stripe webhooks signed exactly as Stripe signs them, posted to dj-stripe's endpoint URL (served by our receiver)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
import stripe
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import resolve, reverse
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

from payments import tasks, webhooks
from payments.models import Payment, PaymentKind, PaymentMethodType, StripeEvent
from payments.services.charges import payment_create, payment_sync
from payments.tasks import drain_stripe_events, process_stripe_event, retry_failed_events
from payments.views import stripe_webhook
from tests.conftest import client_for
from wallets.models import Account, Deposit, Entry

pytestmark = pytest.mark.stripe

SECRET = "whsec_local"


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event_type: str, obj, event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2017-08-15",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": dict(obj)},
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    return json.dumps(event, default=str).encode()


def webhook_url() -> str:
    endpoint = WebhookEndpoint.objects.get(id="we_platform")
    return reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})


def deliver(body: bytes, signature: str | None = None, client: Client | None = None):
    headers = {} if signature is None else {"Stripe-Signature": signature}
    return (client or Client()).post(webhook_url(), data=body, content_type="application/json", headers=headers)


def _balance(user) -> int:
    account = Account.objects.filter(owner=user).first()
    return account.balance if account else 0


def _charged_deposit_unseen(fake_stripe, user, amount=2500):
    """A deposit whose card Stripe charged, while our record still says processing without the intent."""
    pm = fake_stripe.attach_card(user)
    with fake_stripe.unreachable():
        client_for(user).post("/api/v1/wallet/deposits", {"amount": amount, "payment_method": pm}, format="json")
    payment = Payment.objects.get(user=user)
    assert payment.status == "processing" and payment.stripe_payment_intent_id is None
    intent = stripe.PaymentIntent.create(
        amount=amount,
        currency="usd",
        customer=user.stripe_customer.stripe_customer_id,
        payment_method=pm,
        confirm=True,
        metadata={"payment_id": payment.pk, "kind": "deposit"},
    )
    assert intent.status == "succeeded"
    return payment, intent


def test_succeeded_when_it_arrives_before_our_record_knows_the_intent_then_credited_once(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(body := event_body("payment_intent.succeeded", intent), sign(body))

    assert response.status_code == 200, response.content
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.stripe_payment_intent_id == intent.id
    assert Deposit.objects.get(payment=payment).status == "succeeded"
    assert _balance(customer) == 2500
    # Our own (late) confirmation of the same intent changes nothing.
    payment_sync(payment_id=payment.pk, intent=stripe.PaymentIntent.retrieve(intent.id))
    assert _balance(customer) == 2500
    assert Entry.objects.filter(kind="deposit").count() == 1
    assert StripeEvent.objects.get().status == "processed"


def test_failed_when_it_arrives_after_succeeded_then_state_stays_succeeded(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    stale_failure = {
        **dict(intent),
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined"},
    }

    with django_capture_on_commit_callbacks(execute=True):
        deliver(body := event_body("payment_intent.succeeded", intent), sign(body))
        deliver(body := event_body("payment_intent.payment_failed", stale_failure), sign(body))

    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert _balance(customer) == 2500
    assert list(StripeEvent.objects.values_list("status", flat=True)) == ["processed", "processed"]


def test_same_event_delivered_twice_then_applied_once(fake_stripe, customer, django_capture_on_commit_callbacks):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    body = event_body("payment_intent.succeeded", intent)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = deliver(body, sign(body))
        second = deliver(body, sign(body))

    assert first.status_code == second.status_code == 200
    assert callbacks.count(webhooks.drain_soon) == 1  # only the first delivery woke the drain
    assert StripeEvent.objects.count() == 1
    assert _balance(customer) == 2500


def test_bad_signature_then_400_and_nothing_stored(fake_stripe, customer):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    body = event_body("payment_intent.succeeded", intent)

    wrong_secret = deliver(body, sign(body, secret="whsec_attacker"))
    tampered = deliver(body.replace(b'"livemode": false', b'"livemode": false '), sign(body))
    missing = deliver(body)
    override = Client().post(
        webhook_url(),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, secret="whsec_attacker"),
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_attacker",
    )

    assert [r.status_code for r in (wrong_secret, tampered, missing, override)] == [400, 400, 400, 400]
    assert not StripeEvent.objects.exists()
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert _balance(customer) == 0


def test_signature_older_than_tolerance_then_400_and_nothing_stored(fake_stripe, customer):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    body = event_body("payment_intent.succeeded", intent)

    response = deliver(body, sign(body, timestamp=int(time.time()) - 301))

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert _balance(customer) == 0


def test_unhandled_event_type_then_200_and_nothing_changes(fake_stripe, customer, django_capture_on_commit_callbacks):
    payment, _intent = _charged_deposit_unseen(fake_stripe, customer)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = deliver(body := event_body("customer.updated", {"id": "cus_x", "object": "customer"}), sign(body))

    assert response.status_code == 200
    assert webhooks.drain_soon not in callbacks
    assert StripeEvent.objects.get().status == "ignored"
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert _balance(customer) == 0


def test_handler_when_stripe_unreachable_then_failed_visible_and_retried_later(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)

    with fake_stripe.unreachable(), django_capture_on_commit_callbacks(execute=True):
        response = deliver(body := event_body("payment_intent.succeeded", intent), sign(body))

    assert response.status_code == 200
    event = StripeEvent.objects.get()
    assert event.status == "failed" and event.attempts == 1
    assert "APIConnectionError" in event.last_error
    assert _balance(customer) == 0

    assert retry_failed_events() == 1

    event.refresh_from_db()
    assert event.status == "processed" and event.last_error == ""
    assert _balance(customer) == 2500


@pytest.mark.django_db(transaction=True)
def test_same_succeeded_delivered_ten_times_concurrently_then_credited_once(fake_stripe, customer):
    payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    body = event_body("payment_intent.succeeded", intent)
    start = threading.Barrier(10)
    statuses: list[int] = []

    def deliver_once() -> None:
        try:
            start.wait()
            statuses.append(deliver(body, sign(body)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_once) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 10
    assert StripeEvent.objects.count() == 1
    assert StripeEvent.objects.get().status == "processed"
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert _balance(customer) == 2500
    assert Entry.objects.filter(kind="deposit").count() == 1


def test_setup_stripe_command_when_run_twice_then_idempotent_and_prints_path(fake_stripe, settings):
    from io import StringIO

    from django.core.management import call_command

    outputs = []
    for _ in range(2):
        out = StringIO()
        call_command("setup_stripe", "--no-register", stdout=out, stderr=StringIO())
        outputs.append(out.getvalue().strip().splitlines()[-1])

    assert outputs[0] == outputs[1] == webhook_url()
    assert WebhookEndpoint.objects.count() == 1
    assert WebhookEndpoint.objects.get().secret == settings.STRIPE_WEBHOOK_SECRET
    from djstripe.models import APIKey

    assert APIKey.objects.get().djstripe_owner_account_id == "acct_local"


def test_setup_stripe_when_registered_then_fake_delivers_signed_events_to_it(fake_stripe, customer):
    """The fake's own delivery reaches a URL we serve with the endpoint's secret (checked with our verifier)."""
    import http.server

    received: list[tuple[bytes, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 0.2
    from payments.services.setup import stripe_setup

    stripe_setup(base_url=f"http://127.0.0.1:{server.server_port}")
    try:
        pm = fake_stripe.attach_card(customer)
        payment = payment_create(
            user=customer, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=500, currency="usd"
        )
        from payments.services.charges import card_payment_confirm

        card_payment_confirm(payment_id=payment.pk, payment_method_id=pm)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(b'"payment_intent.succeeded"' in body for body, _ in received):
            server.handle_request()
    finally:
        server.server_close()

    types = [json.loads(body)["type"] for body, _ in received]
    assert "payment_intent.succeeded" in types, types
    for body, signature in received:
        stripe.WebhookSignature.verify_header(body.decode(), signature, SECRET, 300)


# --- the receiver: routing, endpoint secret, malformed deliveries ---------------------------------


def test_webhook_url_when_delivered_then_our_receiver_answers_and_no_djstripe_trigger_is_recorded(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(body := event_body("payment_intent.succeeded", intent), sign(body))

    assert resolve(webhook_url()).func is stripe_webhook
    assert response.status_code == 200
    assert StripeEvent.objects.get().status == "processed"
    assert not WebhookEventTrigger.objects.exists()


def test_unknown_endpoint_then_404_page_and_nothing_stored(fake_stripe):
    body = event_body("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})

    response = Client().post(
        f"/stripe/webhook/{uuid.uuid4()}/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")  # the non-API 404 page, as for any other page
    assert not StripeEvent.objects.exists()


def test_get_on_webhook_url_then_405(fake_stripe):
    assert Client().get(webhook_url()).status_code == 405


@pytest.mark.parametrize(
    "body",
    [b"not json", b'["a list"]', b'{"type": "payment_intent.succeeded"}', b'{"id": ""}', b"\xff\xfe"],
    ids=["not-json", "not-an-object", "no-id", "empty-id", "not-utf8"],
)
def test_signed_body_that_is_no_event_then_400_and_nothing_stored(fake_stripe, body):
    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

    response = deliver(body, f"t={timestamp},v1={digest}")

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_endpoint_secret_when_rotated_then_new_one_applies_once_remembered_one_expires(fake_stripe, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(webhooks.time, "monotonic", lambda: clock[0])
    first = deliver(body := event_body("customer.updated", {"id": "cus_1"}), sign(body))
    assert first.status_code == 200
    WebhookEndpoint.objects.filter(id="we_platform").update(secret="whsec_rotated")

    remembered = deliver(body := event_body("customer.updated", {"id": "cus_2"}), sign(body))
    clock[0] += webhooks.SECRET_TTL_SECONDS + 1
    old_secret = deliver(body := event_body("customer.updated", {"id": "cus_3"}), sign(body))
    new_secret = deliver(body := event_body("customer.updated", {"id": "cus_4"}), sign(body, secret="whsec_rotated"))

    assert [remembered.status_code, old_secret.status_code, new_secret.status_code] == [200, 400, 200]
    assert sorted(StripeEvent.objects.values_list("object_id", flat=True)) == ["cus_1", "cus_2", "cus_4"]


# --- the hand-off: one scheduled drain, apply locks, failures -------------------------------------


def test_deliveries_while_a_drain_is_scheduled_then_none_schedules_another_and_one_drain_applies_all(
    fake_stripe, customer, django_capture_on_commit_callbacks, monkeypatch
):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    scheduled: list[tuple] = []
    monkeypatch.setattr(drain_stripe_events, "delay", lambda *args: scheduled.append(args))
    assert cache.add(webhooks.DRAIN_FLAG, 1, 60)  # a drain is queued and has not started

    with django_capture_on_commit_callbacks(execute=True):
        responses = [deliver(body := event_body("payment_intent.succeeded", intent), sign(body)) for _ in range(3)]

    assert [r.status_code for r in responses] == [200] * 3
    assert scheduled == []
    assert list(StripeEvent.objects.values_list("status", flat=True)) == ["pending"] * 3
    assert _balance(customer) == 0

    assert drain_stripe_events() == 3

    assert list(StripeEvent.objects.values_list("status", flat=True)) == ["processed"] * 3
    assert _balance(customer) == 2500
    assert Entry.objects.filter(kind="deposit").count() == 1
    # The drain cleared the flag first: the next first delivery schedules a drain again.
    with django_capture_on_commit_callbacks(execute=True):
        deliver(body := event_body("payment_intent.succeeded", intent), sign(body))
    assert scheduled == [()]


def test_drain_when_it_cannot_be_scheduled_then_delivery_still_200_and_next_delivery_tries_again(
    fake_stripe, customer, django_capture_on_commit_callbacks, monkeypatch
):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)

    def broker_down(*args):
        raise ConnectionError("broker down")

    monkeypatch.setattr(drain_stripe_events, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(body := event_body("payment_intent.succeeded", intent), sign(body))

    assert response.status_code == 200
    assert StripeEvent.objects.get().status == "pending"
    assert cache.get(webhooks.DRAIN_FLAG) is None  # not left set: the next delivery schedules one
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        deliver(body := event_body("payment_intent.succeeded", intent), sign(body))
    assert list(StripeEvent.objects.values_list("status", flat=True)) == ["processed", "processed"]
    assert _balance(customer) == 2500


def test_drain_when_an_event_fails_then_recorded_and_handed_to_the_retry_task_with_a_delay(
    fake_stripe, customer, monkeypatch
):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    monkeypatch.setattr(drain_stripe_events, "delay", lambda *args: None)
    deliver(body := event_body("payment_intent.succeeded", intent), sign(body))
    handed: list[tuple] = []
    monkeypatch.setattr(process_stripe_event, "apply_async", lambda args, **kwargs: handed.append((args, kwargs)))

    with fake_stripe.unreachable():
        assert drain_stripe_events() == 1  # called as a worker calls it, not eagerly

    event = StripeEvent.objects.get()
    assert event.status == "failed" and event.attempts == 1
    assert handed == [((event.pk,), {"countdown": tasks.FAILED_EVENT_RETRY_SECONDS})]
    assert _balance(customer) == 0


@contextmanager
def _applied_elsewhere(event_id: str):
    """Another worker holding ``event_id``'s apply lock, in its own database session.

    The lock is released by an unlock statement, which returns once it is free: a closed session's server
    process lets go of its locks only when it exits, after the client has moved on (the next try could lose).
    """
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [webhooks.APPLY_LOCK_CLASS, event_id])
        yield
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [webhooks.APPLY_LOCK_CLASS, event_id])
            assert cursor.fetchone() == (True,)
    finally:
        other.close()


def test_drain_and_retry_task_when_another_worker_applies_the_event_then_leave_it_to_that_worker(
    fake_stripe, customer, monkeypatch
):
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    monkeypatch.setattr(drain_stripe_events, "delay", lambda *args: None)
    deliver(body := event_body("payment_intent.succeeded", intent), sign(body))
    event = StripeEvent.objects.get()

    with _applied_elsewhere(event.pk):
        assert drain_stripe_events() == 0
        process_stripe_event(event.pk)
        event.refresh_from_db()
        assert event.status == "pending" and event.attempts == 0

    assert drain_stripe_events() == 1
    event.refresh_from_db()
    assert event.status == "processed"
    assert _balance(customer) == 2500


def test_admin_replay_when_a_worker_applies_the_event_then_left_alone_with_a_warning(
    fake_stripe, customer, django_capture_on_commit_callbacks
):
    from tests.backoffice.conftest import user_in_role

    staff = user_in_role("finance")
    _payment, intent = _charged_deposit_unseen(fake_stripe, customer)
    with fake_stripe.unreachable(), django_capture_on_commit_callbacks(execute=True):
        deliver(body := event_body("payment_intent.succeeded", intent), sign(body))
    event = StripeEvent.objects.get()
    admin = Client()
    admin.force_login(staff)

    url = reverse("admin:payments_stripeevent_changelist")
    confirmation = admin.post(url, {"action": "replay", "_selected_action": [event.pk]})
    assert confirmation.status_code == 200 and b"confirm-money-action" in confirmation.content
    with _applied_elsewhere(event.pk):
        page = admin.post(
            url,
            {"action": "replay", "_selected_action": [event.pk], "apply": "1", "reason": "Stripe was down"},
            follow=True,
        )

    assert b"a worker is applying it right now" in page.content
    event.refresh_from_db()
    assert event.status == "failed" and event.attempts == 1
    assert _balance(customer) == 0
