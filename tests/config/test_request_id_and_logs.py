"""X-Request-ID on every response; one JSON access line per request with its ids, status and duration."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db

GENERATED = re.compile(r"^req_[0-9a-f]{24}$")


def test_request_id_when_given_then_echoed_in_header_and_error_body(api):
    response = api.get("/api/v1/me", HTTP_X_REQUEST_ID="client-abc.123:4")

    assert response["X-Request-ID"] == "client-abc.123:4"
    assert response.json()["error"]["request_id"] == "client-abc.123:4"


def test_request_id_when_absent_then_generated_and_unique(api):
    first = api.get("/healthz")["X-Request-ID"]
    second = api.get("/healthz")["X-Request-ID"]

    assert GENERATED.match(first)
    assert GENERATED.match(second)
    assert first != second


@pytest.mark.parametrize("hostile", ["has space", "x" * 129, "semi;colon", "new\\nline", "ünïcode"])
def test_request_id_when_malformed_then_replaced_by_generated_one(api, hostile):
    response = api.get("/healthz", HTTP_X_REQUEST_ID=hostile)

    assert GENERATED.match(response["X-Request-ID"])


def test_access_log_when_authenticated_then_json_line_with_ids_path_status_duration(customer_api, customer, json_log):
    response = customer_api.get("/api/v1/me", HTTP_X_REQUEST_ID="req-log-1")

    assert response.status_code == 200
    line = json_log.access("req-log-1")
    assert line["message"] == "request"
    assert line["level"] == "INFO"
    assert line["user_id"] == customer.pk
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/me"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float | int)
    assert 0 <= line["duration_ms"] < 60_000
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["time"]), line["time"]


def test_access_log_when_anonymous_error_then_status_logged_and_no_user(api, json_log):
    api.post(
        "/api/v1/auth/token",
        {"email": "x@example.test", "password": "wrong"},
        format="json",
        HTTP_X_REQUEST_ID="req-log-2",
    )

    line = json_log.access("req-log-2")
    assert line["status"] == 401
    assert line["path"] == "/api/v1/auth/token"
    assert "user_id" not in line


def test_access_log_when_session_user_then_user_id_logged(client, staff, json_log):
    client.force_login(staff)

    response = client.get("/admin/", HTTP_X_REQUEST_ID="req-log-3")

    assert response.status_code == 200
    assert json_log.access("req-log-3")["user_id"] == staff.pk


def test_log_lines_never_carry_the_password_sent(api, customer, json_log):
    api.post("/api/v1/auth/token", {"email": customer.email, "password": "s3cret-Passw0rd!"}, format="json")
    api.post(
        "/api/v1/auth/register", {"email": "b@example.test", "password": "s3cret-Passw0rd!", "role": "x"}, format="json"
    )

    assert json_log.lines()
    assert "s3cret-Passw0rd!" not in str(json_log.lines())
