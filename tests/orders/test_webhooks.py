from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orders import tasks, webhooks
from orders.models import DeliveryAttempt, EventDelivery, OrderEvent, WebhookEndpoint
from orders.services.events import DELIVERY_RETRY_WINDOW, delivery_backoff
from tests.conftest import assert_error, client_for
from tests.factories import MerchantFactory
from tests.orders.conftest import buy, fund, reserve

pytestmark = pytest.mark.django_db


def _register(merchant_api, url: str) -> dict:
    response = merchant_api.post("/api/v1/merchant/webhooks", {"url": url}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- endpoints API ------------------------------------------------------------------------


def test_webhook_endpoint_create_when_merchant_then_secret_shown_once(merchant_api):
    created = _register(merchant_api, "https://hooks.example.test/orders")

    assert created["id"].startswith("whk_")
    assert created["secret"].startswith("whsec_")
    listed = merchant_api.get("/api/v1/merchant/webhooks").json()["results"]
    assert listed == [
        {
            "id": created["id"],
            "url": "https://hooks.example.test/orders",
            "events": [],
            "enabled": True,
            "disabled_reason": "",
            "created_at": listed[0]["created_at"],
        }
    ]
    assert "secret" not in merchant_api.get(f"/api/v1/merchant/webhooks/{created['id']}").json()


def test_webhook_endpoint_delete_when_own_then_204_and_gone(merchant_api):
    created = _register(merchant_api, "https://hooks.example.test/orders")

    assert merchant_api.delete(f"/api/v1/merchant/webhooks/{created['id']}").status_code == 204

    assert merchant_api.get("/api/v1/merchant/webhooks").json()["results"] == []
    assert WebhookEndpoint.objects.get(pk=created["id"]).deleted_at is not None
    assert_error(merchant_api.delete(f"/api/v1/merchant/webhooks/{created['id']}"), 404, "not_found")


def test_webhook_endpoint_delete_when_other_merchants_then_404(merchant_api):
    created = _register(merchant_api, "https://hooks.example.test/orders")
    other = client_for(MerchantFactory.create())

    assert_error(other.delete(f"/api/v1/merchant/webhooks/{created['id']}"), 404, "not_found")
    assert other.get("/api/v1/merchant/webhooks").json()["results"] == []


def test_webhook_endpoints_when_customer_then_403(customer_api):
    assert_error(customer_api.get("/api/v1/merchant/webhooks"), 403, "permission_denied")
    response = customer_api.post("/api/v1/merchant/webhooks", {"url": "https://x.example.test"}, format="json")
    assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.test/x", "not a url", "https://user:pw@hooks.example.test/", "http:///x"]
)
def test_webhook_endpoint_create_when_bad_url_then_400(merchant_api, url):
    response = merchant_api.post("/api/v1/merchant/webhooks", {"url": url}, format="json")
    assert_error(response, 400, "validation_error", "url")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/x", "http://10.1.2.3/x", "http://192.168.0.10/x", "http://[::1]/x",
     "http://169.254.169.254/latest", "http://localhost/x", "http://[::ffff:127.0.0.1]/x",
     "http://[64:ff9b::a9fe:a9fe]/latest", "http://[2002:a9fe:a9fe::1]/x", "https://93.184.216.34:22/x",
     "http://[fe80::1]/x", "http://0.0.0.0/x"],
)  # fmt: skip
def test_webhook_endpoint_create_when_private_target_in_production_then_400(merchant_api, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    response = merchant_api.post("/api/v1/merchant/webhooks", {"url": url}, format="json")
    assert_error(response, 400, "validation_error", "url")


def test_webhook_endpoint_create_when_public_address_in_production_then_201(merchant_api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    _register(merchant_api, "https://93.184.216.34/hooks")


def test_webhook_endpoint_create_when_ten_exist_then_400(merchant_api):
    for n in range(10):
        _register(merchant_api, f"https://hooks.example.test/{n}")
    response = merchant_api.post("/api/v1/merchant/webhooks", {"url": "https://hooks.example.test/x"}, format="json")
    assert_error(response, 400, "validation_error", "url")


# --- signing -----------------------------------------------------------------------------------


def test_signature_when_verified_with_standardwebhooks_then_only_right_secret_and_body():
    body = b'{"id":"evt_1"}'
    secret, other = webhooks.secret_new(), webhooks.secret_new()
    headers = webhooks.headers_for(secrets_=[secret], msg_id="evt_1", body=body)

    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(body, headers) == {"id": "evt_1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-timestamp": str(int(time.time()) - 301)})


def test_signature_when_two_secrets_then_space_separated_and_either_verifies():
    body = b'{"id":"evt_2"}'
    new, old = webhooks.secret_new(), webhooks.secret_new()
    headers = webhooks.headers_for(secrets_=[new, old], msg_id="evt_2", body=body)

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)


# --- delivery -------------------------------------------------------------------------------------


def test_order_event_when_receiver_fails_then_retried_with_backoff_logged_and_delivered_signed(
    customer, customer_api, merchant_api, product, receiver, django_capture_on_commit_callbacks
):
    created = _register(merchant_api, receiver.url)
    fund(customer, 5000)
    receiver.statuses = [500]

    with django_capture_on_commit_callbacks(execute=True):
        order_id = buy(customer_api, product.pk).json()["id"]

    # First attempt made after commit, refused by the receiver: recorded, retry scheduled ~30 s on.
    assert len(receiver.requests) == 1
    delivery = EventDelivery.objects.get(event__order_id=order_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 20 < wait < 34
    first = DeliveryAttempt.objects.get(delivery=delivery)
    assert (first.status_code, first.error, first.attempt) == (500, "HTTP 500", 1)

    # Not due yet: the sweep sends nothing.
    assert tasks.deliveries_retry_due() == 0
    assert len(receiver.requests) == 1

    # The retry time comes; the receiver has recovered.
    EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert tasks.deliveries_retry_due() == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    assert delivery.delivered_at is not None
    for headers, body in receiver.requests:  # every delivery verifies with the package receivers use
        event = Webhook(created["secret"]).verify(body, headers)
    assert event["type"] == "order.paid"
    assert event["data"]["object"]["id"] == order_id
    assert event["data"]["object"]["status"] == "paid"
    assert "fulfillment" not in event["data"]["object"]
    assert receiver.requests[1][0]["webhook-id"] == event["id"] == receiver.requests[0][0]["webhook-id"]
    assert receiver.requests[0][1] == receiver.requests[1][1]  # a retry sends the same event

    # The log shows each attempt, newest first, with the backoff it scheduled.
    log = merchant_api.get(f"/api/v1/merchant/webhooks/{created['id']}/deliveries").json()["results"]
    assert [(row["attempt"], row["status"], row["response_status"]) for row in log] == [
        (2, "succeeded", 200),
        (1, "failed", 500),
    ]
    assert set(log[0]) >= {"id", "event", "event_type", "status", "response_status", "duration_ms", "attempt"}
    assert {row["id"] for row in log} == {delivery.pk}
    assert log[0]["event"] == event["id"] and log[0]["event_type"] == "order.paid"
    assert log[1]["next_retry_at"] is not None and log[0]["next_retry_at"] is None
    assert log[0]["request"]["webhook_id"] == event["id"]

    # Delivered: nothing more is due.
    EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))
    assert tasks.deliveries_retry_due() == 0


def test_backoff_when_attempts_grow_then_doubles_up_to_cap():
    waits = [delivery_backoff(n).total_seconds() for n in (1, 2, 3, 4, 30)]
    assert 27 <= waits[0] <= 33
    assert 54 <= waits[1] <= 66
    assert 108 <= waits[2] <= 132
    assert 216 <= waits[3] <= 264
    assert 6 * 3600 * 0.9 <= waits[4] <= 6 * 3600 * 1.1


def test_backoff_when_summed_then_retries_span_the_three_day_window():
    elapsed, attempts = 0.0, 1
    while elapsed < DELIVERY_RETRY_WINDOW.total_seconds():
        elapsed += delivery_backoff(attempts).total_seconds()
        attempts += 1
    assert 15 <= attempts <= 25  # about 20 tries over 3 days, the last ones 6 h apart


def test_order_event_when_receiver_unreachable_then_error_recorded_and_gives_up_at_max(
    customer, customer_api, merchant_api, product, django_capture_on_commit_callbacks
):
    from tests.conftest import _free_port

    _register(merchant_api, f"http://127.0.0.1:{_free_port()}/closed")
    fund(customer, 5000)
    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)
    delivery = EventDelivery.objects.get()
    assert delivery.status == "pending"
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None
    assert "ConnectionError" in attempt.error

    # Three days on, the next failure gives up.
    EventDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - DELIVERY_RETRY_WINDOW, next_attempt_at=timezone.now()
    )
    tasks.deliveries_retry_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert tasks.deliveries_retry_due() == 0


def test_order_event_when_url_turns_private_in_production_then_not_sent(
    customer, customer_api, merchant_api, product, receiver, settings, django_capture_on_commit_callbacks
):
    _register(merchant_api, receiver.url)  # allowed while registering in development
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    fund(customer, 5000)

    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)

    assert receiver.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None
    assert "port 80 or 443" in attempt.error or "public address" in attempt.error


def test_order_event_when_order_events_url_set_then_internal_service_gets_every_event(
    customer, customer_api, product, receiver, settings, django_capture_on_commit_callbacks
):
    settings.ORDER_EVENTS_URL = receiver.url
    settings.ORDER_EVENTS_SECRET = internal = webhooks.secret_new()
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # staff-configured: private targets still allowed
    fund(customer, 5000)
    order = reserve(customer, product)

    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)
        customer_api.post(f"/api/v1/orders/{order.pk}/cancel")

    types = [json.loads(body)["type"] for _, body in receiver.requests]
    assert sorted(types) == ["order.canceled", "order.paid"]
    for headers, body in receiver.requests:
        Webhook(internal).verify(body, headers)


def test_order_event_when_fan_out_lost_then_sweep_dispatches(customer, customer_api, merchant_api, product, receiver):
    _register(merchant_api, receiver.url)
    fund(customer, 5000)
    buy(customer_api, product.pk)  # no on-commit callbacks run: as if the broker was down
    event = OrderEvent.objects.get()
    assert event.dispatched_at is None
    OrderEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=1))

    tasks.deliveries_retry_due()

    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert EventDelivery.objects.get(event=event).status == "succeeded"
    assert len(receiver.requests) == 1


def test_order_event_when_endpoint_deleted_then_not_sent(
    customer, customer_api, merchant_api, product, receiver, django_capture_on_commit_callbacks
):
    endpoint = _register(merchant_api, receiver.url)
    merchant_api.delete(f"/api/v1/merchant/webhooks/{endpoint['id']}")
    fund(customer, 5000)
    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)
    assert receiver.requests == []
    assert OrderEvent.objects.get().dispatched_at is not None


def test_order_event_when_merchant_registers_after_a_sale_then_next_sale_delivered(
    customer, customer_api, merchant_api, product, receiver, django_capture_on_commit_callbacks
):
    fund(customer, 5000)
    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)
    # Nobody listens: the event is recorded as dispatched and no task is queued for it.
    assert OrderEvent.objects.get().dispatched_at is not None
    assert not EventDelivery.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        _register(merchant_api, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        order_id = buy(customer_api, product.pk).json()["id"]

    assert [json.loads(body)["data"]["object"]["id"] for _, body in receiver.requests] == [order_id]


def test_order_event_when_endpoint_deleted_while_retrying_then_given_up(
    customer, customer_api, merchant_api, product, receiver, django_capture_on_commit_callbacks
):
    endpoint = _register(merchant_api, receiver.url)
    receiver.statuses = [500]
    fund(customer, 5000)
    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)
    merchant_api.delete(f"/api/v1/merchant/webhooks/{endpoint['id']}")
    EventDelivery.objects.update(next_attempt_at=timezone.now())

    tasks.deliveries_retry_due()

    delivery = EventDelivery.objects.get()
    assert delivery.status == "failed"
    assert "deleted" in delivery.last_error
    assert len(receiver.requests) == 1
