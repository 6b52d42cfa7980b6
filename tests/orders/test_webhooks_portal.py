from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
import urllib3.util.connection
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orders import tasks, webhooks
from orders.models import DeliveryAttempt, EventDelivery, WebhookEndpoint
from orders.services.events import DELIVERY_LOG_KEEP, ENDPOINT_DISABLE_AFTER, delivery_attempt
from tests.conftest import assert_error, client_for
from tests.factories import MerchantFactory
from tests.orders.conftest import Receiver, buy, fund

pytestmark = pytest.mark.django_db

BASE = "/api/v1/merchant/webhooks"


def _register(client: Any, url: str, **body: Any) -> dict:
    response = client.post(BASE, {"url": url, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _ping(client: Any, endpoint_id: str) -> dict:
    response = client.post(f"{BASE}/{endpoint_id}/test")
    assert response.status_code == 201, response.content
    return response.json()


# --- the API ---------------------------------------------------------------------------------------


def test_webhook_endpoint_patch_when_events_and_enabled_then_changed(merchant_api):
    created = _register(merchant_api, "https://hooks.example.test/a", events=["order.paid"])
    assert created["events"] == ["order.paid"]

    response = merchant_api.patch(
        f"{BASE}/{created['id']}", {"events": ["order.refunded", "order.paid"], "enabled": False}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["events"] == ["order.paid", "order.refunded"]
    assert response.json()["enabled"] is False
    assert merchant_api.get(f"{BASE}/{created['id']}").json()["enabled"] is False


def test_webhook_endpoint_create_when_unknown_event_type_then_400(merchant_api):
    response = merchant_api.post(
        BASE, {"url": "https://hooks.example.test/a", "events": ["order.eaten"]}, format="json"
    )
    assert_error(response, 400, "validation_error", "events")


@pytest.mark.parametrize(
    "call",
    [
        ("get", "{id}"),
        ("patch", "{id}"),
        ("delete", "{id}"),
        ("post", "{id}/rotate-secret"),
        ("post", "{id}/test"),
        ("get", "{id}/deliveries"),
        ("post", "{id}/deliveries/{delivery}/retry"),
    ],
)
def test_webhook_api_when_other_merchants_endpoint_then_404(merchant_api, receiver, call):
    created = _register(merchant_api, receiver.url)
    delivery = _ping(merchant_api, created["id"])["id"]
    other = client_for(MerchantFactory.create())
    method, path = call

    response = getattr(other, method)(f"{BASE}/" + path.format(id=created["id"], delivery=delivery), {}, format="json")

    assert_error(response, 404, "not_found")
    assert len(receiver.requests) == 1  # only the owner's ping


def test_webhook_retry_when_delivery_of_another_endpoint_then_404(merchant_api, receiver):
    first = _register(merchant_api, receiver.url)
    second = _register(merchant_api, receiver.url)
    delivery = _ping(merchant_api, first["id"])["id"]

    assert_error(merchant_api.post(f"{BASE}/{second['id']}/deliveries/{delivery}/retry"), 404, "not_found")


def test_webhook_api_when_customer_then_403(customer_api):
    for path in ("", "/whk_x", "/whk_x/deliveries"):
        assert_error(customer_api.get(BASE + path), 403, "permission_denied")


# --- ping, rotation, retry -------------------------------------------------------------------------


def test_ping_when_sent_then_receiver_verifies_it(merchant_api, receiver):
    created = _register(merchant_api, receiver.url)

    delivery = _ping(merchant_api, created["id"])

    assert (delivery["status"], delivery["response_status"], delivery["event_type"]) == ("succeeded", 200, "ping")
    headers, body = receiver.requests[0]
    payload = Webhook(created["secret"]).verify(body, headers)
    assert payload["type"] == "ping" and payload["id"] == headers["webhook-id"] == delivery["event"]


def test_rotation_when_within_24h_then_both_secrets_verify_then_only_new(merchant_api, receiver):
    created = _register(merchant_api, receiver.url)
    old = created["secret"]

    rotated = merchant_api.post(f"{BASE}/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.content
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    _ping(merchant_api, created["id"])

    headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)  # a receiver not yet switched
    Webhook(new).verify(body, headers)  # a receiver already switched

    WebhookEndpoint.objects.filter(pk=created["id"]).update(previous_secret_expires_at=timezone.now())
    _ping(merchant_api, created["id"])
    headers, body = receiver.requests[-1]
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def test_retry_when_requested_then_same_event_and_webhook_id_again(merchant_api, receiver):
    created = _register(merchant_api, receiver.url)
    receiver.statuses = [503]
    first = _ping(merchant_api, created["id"])
    assert (first["status"], first["response_status"]) == ("pending", 503)

    again = merchant_api.post(f"{BASE}/{created['id']}/deliveries/{first['id']}/retry")

    assert again.status_code == 200, again.content
    assert (again.json()["status"], again.json()["attempt"]) == ("succeeded", 2)
    (h1, b1), (h2, b2) = receiver.requests
    assert h1["webhook-id"] == h2["webhook-id"] == first["event"]
    assert b1 == b2
    Webhook(created["secret"]).verify(b2, h2)
    log = merchant_api.get(f"{BASE}/{created['id']}/deliveries").json()["results"]
    assert [(row["attempt"], row["response_status"]) for row in log] == [(2, 200), (1, 503)]


# --- filters, disabling, retention -----------------------------------------------------------------


def test_event_filter_when_endpoint_wants_refunds_only_then_paid_not_sent(
    customer, customer_api, merchant_api, product, receiver, django_capture_on_commit_callbacks
):
    _register(merchant_api, receiver.url, events=["order.refunded"])
    everything = Receiver()
    try:
        _register(merchant_api, everything.url)
        fund(customer, 5000)
        with django_capture_on_commit_callbacks(execute=True):
            buy(customer_api, product.pk)
        assert receiver.requests == []
        assert len(everything.requests) == 1
    finally:
        everything.close()


def test_endpoint_when_failing_for_five_days_then_disabled_and_merchant_mailed_once(
    merchant, merchant_api, receiver, django_capture_on_commit_callbacks
):
    created = _register(merchant_api, receiver.url)
    receiver.statuses = [500, 500, 500]
    _ping(merchant_api, created["id"])
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.failing_since is not None and endpoint.enabled

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - ENDPOINT_DISABLE_AFTER)
    with django_capture_on_commit_callbacks(execute=True):
        _ping(merchant_api, created["id"])

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "5 days" in endpoint.disabled_reason
    assert [m.to for m in mail.outbox] == [[merchant.email]]
    assert created["id"] in mail.outbox[0].body
    # Scheduled retries to a disabled endpoint give up without sending; nothing more is mailed.
    sent = len(receiver.requests)
    EventDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliveries_retry_due()
        assert len(receiver.requests) == sent
        assert not EventDelivery.objects.filter(status="pending").exists()
        _ping(merchant_api, created["id"])  # a manual test still goes out, and fails again
    assert len(receiver.requests) == sent + 1
    assert len(mail.outbox) == 1

    # Enabling it again clears the streak.
    merchant_api.patch(f"{BASE}/{created['id']}", {"enabled": True}, format="json")
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None


def test_endpoint_when_a_delivery_succeeds_then_failure_streak_cleared(merchant_api, receiver):
    created = _register(merchant_api, receiver.url)
    receiver.statuses = [500]
    _ping(merchant_api, created["id"])
    _ping(merchant_api, created["id"])
    assert WebhookEndpoint.objects.get(pk=created["id"]).failing_since is None


def test_delivery_log_when_older_than_30_days_then_pruned(merchant_api, receiver):
    created = _register(merchant_api, receiver.url)
    _ping(merchant_api, created["id"])
    _ping(merchant_api, created["id"])
    old = DeliveryAttempt.objects.order_by("id").first()
    assert old is not None
    DeliveryAttempt.objects.filter(pk=old.pk).update(created_at=timezone.now() - DELIVERY_LOG_KEEP - timedelta(1))
    EventDelivery.objects.filter(pk=old.delivery_id).update(created_at=timezone.now() - DELIVERY_LOG_KEEP)

    tasks.deliveries_retry_due()

    assert DeliveryAttempt.objects.count() == 1
    assert len(merchant_api.get(f"{BASE}/{created['id']}/deliveries").json()["results"]) == 1
    assert not EventDelivery.objects.filter(pk=old.delivery_id).exists()


# --- SSRF: the address checked is the address connected to ----------------------------------------


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "169.254.169.254", "64:ff9b::a9fe:a9fe", "10.0.0.5", "2002:c0a8:0101::1", "::1"]
)
def test_target_when_resolving_to_non_public_address_then_refused(address):
    assert not webhooks.is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "2002:5db8:d822::1"])
def test_target_when_public_address_then_accepted(address):
    assert webhooks.is_public_address(address)


class FakeDns:
    """Answers ``hooks.example.test`` with the planned addresses, one answer per lookup; other names really."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> None:
        self.answers = answers
        self.lookups = 0
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "hooks.example.test":
                return real(host, port, *args, **kwargs)
            address = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Records every TCP connection the webhook client opens (and refuses it)."""
    made: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        made.append(address)
        raise ConnectionRefusedError("refused by the test")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return made


def test_send_when_dns_turns_private_after_registration_then_refused_without_connecting(
    merchant_api, settings, monkeypatch
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    dns = FakeDns(monkeypatch, ["93.184.216.34", "127.0.0.1"])
    made = _connections(monkeypatch)
    created = _register(merchant_api, "https://hooks.example.test/orders")  # checked: public

    delivery = _ping(merchant_api, created["id"])  # the name now answers 127.0.0.1

    assert delivery["response_status"] is None
    assert "public address" in delivery["error"]
    assert made == []
    assert dns.lookups == 2


@pytest.mark.parametrize("rebound", ["127.0.0.1", "169.254.169.254", "64:ff9b::a9fe:a9fe"])
def test_send_when_dns_changes_between_check_and_connect_then_connects_to_checked_address(
    merchant_api, settings, monkeypatch, rebound
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    dns = FakeDns(monkeypatch, ["93.184.216.34", "93.184.216.34", rebound])
    made = _connections(monkeypatch)
    created = _register(merchant_api, "https://hooks.example.test/orders")

    _ping(merchant_api, created["id"])

    # One lookup for the registration and one for the send: the connection went to the checked
    # address; the rebound answer was never asked for, so never used.
    assert dns.lookups == 2
    assert made and {host for host, _ in made} == {"93.184.216.34"}
    assert {port for _, port in made} == {443}


def test_send_when_name_resolves_to_receiver_then_host_header_is_the_name(merchant_api, monkeypatch, receiver):
    port = receiver.url.split(":")[2].split("/")[0]
    FakeDns(monkeypatch, ["127.0.0.1", "10.255.255.1"])  # the second answer would not connect
    created = _register(merchant_api, f"http://hooks.example.test:{port}/hooks/orders")

    delivery = _ping(merchant_api, created["id"])

    assert delivery["status"] == "succeeded"
    headers, body = receiver.requests[0]
    assert headers["host"] == f"hooks.example.test:{port}"
    Webhook(created["secret"]).verify(body, headers)


def test_register_when_port_22_or_private_in_production_then_refused(merchant_api, settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    FakeDns(monkeypatch, ["93.184.216.34"])
    response = merchant_api.post(BASE, {"url": "https://hooks.example.test:22/x"}, format="json")
    assert_error(response, 400, "validation_error", "url")
    assert "port" in response.json()["error"]["message"]


def test_delivery_when_port_22_in_production_then_not_sent(merchant_api, settings, monkeypatch):
    created = _register(merchant_api, "https://hooks.example.test:22/x")  # development: allowed
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    FakeDns(monkeypatch, ["93.184.216.34"])
    made = _connections(monkeypatch)

    delivery = _ping(merchant_api, created["id"])

    assert "port 80 or 443" in delivery["error"]
    assert made == []
    assert delivery_attempt(delivery_id=delivery["id"]) is None  # not due again yet
