"""Error reporting: what reaches Sentry, captured by an in-memory transport."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults

import environ
import pytest
import sentry_sdk
from django.core import signals
from django.db import close_old_connections
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import Transport

from accounts.services import tokens_for
from config.sentry import sentry_init
from config.wsgi import application

DSN = "https://public@sentry.example.invalid/1"
PAN = "4242 4242 4242 4242"
SECOND_PAN = "4000-0025-0000-3155"
CLIENT_SECRET = "pi_3PabcDEF_secret_XyZ123abc"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
STRIPE_KEY = "sk_test_51Habcdefghijklmnopqrstuvwx"
SESSION_COOKIE = "sessioncookievalue0123456789"


class MemoryTransport(Transport):
    """Keeps every envelope the SDK would send, and sends nothing."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        # Read as the JSON the SDK sends, not as its ``Event`` TypedDict.
        return [dict[str, Any](event) for envelope in self.envelopes if (event := envelope.get_event()) is not None]

    def raw(self) -> str:
        return "\n".join(envelope.serialize().decode() for envelope in self.envelopes)


@pytest.fixture
def sentry_transport(monkeypatch):
    monkeypatch.setenv("SENTRY_DSN", DSN)
    monkeypatch.setenv("SENTRY_RELEASE", "2025.06.1")
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "staging")
    assert sentry_init(environ.Env(), transport=MemoryTransport) is True
    transport = sentry_sdk.get_client().transport
    assert isinstance(transport, MemoryTransport)
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def _card_payment_body() -> dict[str, Any]:
    return {
        "amount": 1050,
        "currency": "usd",
        "card": {"number": PAN, "exp_month": 12, "exp_year": 2030, "cvc": "314"},
        "client_secret": CLIENT_SECRET,
        "note": f"second card {SECOND_PAN}",
        "integration": {"signing": WEBHOOK_SECRET, "key_hint": STRIPE_KEY},
    }


def _send_card_payment(customer, path: str) -> tuple[str, int]:
    """POSTs through the production WSGI application, as gunicorn calls it; answers the token and status."""
    access_token = tokens_for(customer)["access"]
    body = json.dumps(_card_payment_body()).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {access_token}",
        "HTTP_COOKIE": f"sessionid={SESSION_COOKIE}",
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    # As Django's test client does: the test's transaction must outlive the request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, start_response)
        b"".join(response)
        response.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return access_token, int(statuses[0].split()[0])


def _forbidden_strings(access_token: str) -> list[str]:
    return [
        PAN,
        PAN.replace(" ", ""),
        SECOND_PAN,
        SECOND_PAN.replace("-", ""),
        CLIENT_SECRET,
        WEBHOOK_SECRET,
        STRIPE_KEY,
        SESSION_COOKIE,
        access_token,
        access_token.split(".")[1],
    ]


def _request_header_names(event: dict[str, Any]) -> set[str]:
    return {name.lower() for name in event["request"].get("headers", {})}


@pytest.mark.urls("tests.config.sentry_urls")
@pytest.mark.django_db
def test_error_in_card_payment_when_reported_then_no_card_token_or_secret_reaches_sentry(customer, sentry_transport):
    access_token, status = _send_card_payment(customer, "/api/v1/_test/card-payment")

    assert status == 500
    events = sentry_transport.events()
    assert len(events) == 1
    event = events[0]
    # The report is useful: the exception, the request and the frames' variables are there.
    assert event["exception"]["values"][-1]["type"] == "CardProcessorError"
    assert event["request"]["url"].endswith("/api/v1/_test/card-payment")
    assert event["request"]["method"] == "POST"
    assert event["request"]["data"]["amount"] == 1050
    assert event["release"] == "2025.06.1"
    assert event["environment"] == "staging"
    frame_vars = [frame.get("vars", {}) for frame in event["exception"]["values"][-1]["stacktrace"]["frames"]]
    view_vars = next(variables for variables in frame_vars if "card_number" in variables)
    assert view_vars["client_secret"] == "[Filtered]"
    assert any("charging card" in str(crumb.get("message")) for crumb in event["breadcrumbs"]["values"])
    # ...and carries none of the secrets.
    raw = sentry_transport.raw()
    for secret in _forbidden_strings(access_token):
        assert secret not in raw, secret
    assert "authorization" not in _request_header_names(event)
    assert "cookie" not in _request_header_names(event)
    assert event["request"]["data"]["card"] == "[Filtered]"
    assert "cookies" not in event["request"]
    assert json.dumps(event).count("Bearer eyJ") == 0


@pytest.mark.urls("tests.config.sentry_urls")
@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/payment-methods/_test-explode", "/api/v1/auth/_test-explode"])
def test_error_in_auth_or_payment_method_call_when_reported_then_whole_body_is_dropped(
    customer, sentry_transport, path
):
    access_token, status = _send_card_payment(customer, path)

    assert status == 500
    (event,) = sentry_transport.events()
    assert event["request"]["url"].endswith(path)
    assert event["request"]["data"] == "[Filtered]"
    raw = sentry_transport.raw()
    for secret in _forbidden_strings(access_token):
        assert secret not in raw, secret


def test_captured_message_when_it_holds_secrets_then_they_are_scrubbed(sentry_transport):
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl"
    with sentry_sdk.new_scope() as scope:
        scope.set_extra("payload", {"refresh": token, "otp": "123456", "password": "hunter2", "note": f"pan {PAN}"})
        scope.set_context("stripe", {"api_key": STRIPE_KEY, "url": "postgres://app:hunter2@db.internal:5432/app"})
        sentry_sdk.capture_message(f"webhook signed with {WEBHOOK_SECRET} for Bearer {token}")

    raw = sentry_transport.raw()
    for secret in (token, "123456", "hunter2", PAN, STRIPE_KEY, WEBHOOK_SECRET):
        assert secret not in raw, secret
    (event,) = sentry_transport.events()
    assert event["extra"]["payload"]["note"] == "pan [Filtered]"
    assert event["contexts"]["stripe"]["url"] == "postgres://app:[Filtered]@db.internal:5432/app"


def test_sentry_when_dsn_is_set_then_django_celery_and_logging_integrations_are_on(sentry_transport):
    client = sentry_sdk.get_client()

    assert client.is_active()
    assert client.options["send_default_pii"] is False
    for integration in (DjangoIntegration, CeleryIntegration, LoggingIntegration):
        assert client.get_integration(integration) is not None, integration


def test_sentry_when_release_unset_then_git_sha_is_the_release(monkeypatch):
    monkeypatch.setenv("SENTRY_DSN", DSN)
    monkeypatch.delenv("SENTRY_RELEASE", raising=False)
    monkeypatch.setenv("GIT_SHA", "0123abc")
    try:
        assert sentry_init(environ.Env(), transport=MemoryTransport) is True
        assert sentry_sdk.get_client().options["release"] == "0123abc"
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def test_sentry_when_dsn_unset_then_sdk_is_not_initialised(monkeypatch):
    monkeypatch.delenv("SENTRY_DSN", raising=False)

    assert sentry_init(environ.Env()) is False
    assert not sentry_sdk.get_client().is_active()


def test_settings_when_loaded_without_dsn_then_no_client_is_active():
    # The suite's settings ran config.sentry.sentry_init with no SENTRY_DSN.
    assert not sentry_sdk.get_client().is_active()
