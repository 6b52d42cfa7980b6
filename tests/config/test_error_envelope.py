"""Every API error has the contract's envelope: unknown paths, wrong methods and crashes included."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.config.urls import LOGGED_DETAIL
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v2/products", "/api/v1/me/extra"])
def test_unknown_api_path_then_404_envelope(api, path, method):
    response = getattr(api, method)(path)

    error = assert_error(response, 404, "not_found")
    assert error["type"] == "invalid_request_error"
    assert response["Content-Type"] == "application/json"


def test_unknown_api_path_when_debug_on_then_still_404_envelope(api, settings):
    settings.DEBUG = True

    response = api.get("/api/v1/no-such-thing")

    assert_error(response, 404, "not_found")


def test_unknown_page_outside_api_then_html_404(api):
    response = api.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/auth/register"), ("delete", "/api/v1/me"), ("put", "/api/v1/auth/token")],
)
def test_wrong_method_then_405_envelope_with_allow(customer_api, method, path):
    response = getattr(customer_api, method)(path)

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"]


def _assert_internal_error_without_detail(response) -> dict:
    error = assert_error(response, 500, "internal_error")
    assert error["type"] == "api_error"
    assert error["request_id"] == response["X-Request-ID"]
    text = response.content.decode()
    for leak in ("Traceback", "RuntimeError", "hunter2", "postgres://", 'File "'):
        assert leak not in text
    return error


def _error_lines_of(json_log, request_id: str) -> list[dict]:
    return [line for line in json_log.lines() if line.get("request_id") == request_id and line["level"] == "ERROR"]


@pytest.mark.urls("tests.config.urls")
def test_api_view_crash_then_500_envelope_and_full_detail_only_in_log(api, json_log):
    response = api.get("/api/v1/_test/explode", HTTP_X_REQUEST_ID="req-crash-1")

    _assert_internal_error_without_detail(response)
    logged = _error_lines_of(json_log, "req-crash-1")
    with_traceback = [line for line in logged if "Traceback" in line.get("exc_info", "")]
    assert with_traceback, logged
    assert f"RuntimeError: {LOGGED_DETAIL}" in with_traceback[0]["exc_info"]
    _assert_no_secret_in(json_log)
    every_error_line = [line for line in json_log.lines() if line["level"] == "ERROR"]
    assert every_error_line == logged, "a 5xx is logged once, tagged with its request id"
    assert json_log.access("req-crash-1")["status"] == 500


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.urls("tests.config.urls")
def test_plain_view_crash_under_api_then_500_envelope_whatever_debug(settings, json_log, debug):
    settings.DEBUG = debug
    api = APIClient(raise_request_exception=False)

    response = api.get("/api/v1/_test/explode-plain", HTTP_X_REQUEST_ID="req-crash-2")

    _assert_internal_error_without_detail(response)
    logged = _error_lines_of(json_log, "req-crash-2")
    assert any(LOGGED_DETAIL in line.get("exc_info", "") for line in logged), logged
    _assert_no_secret_in(json_log)


@pytest.mark.urls("tests.config.urls")
def test_page_crash_outside_api_then_html_500_without_detail(json_log):
    api = APIClient(raise_request_exception=False)

    response = api.get("/_test/explode-page", HTTP_X_REQUEST_ID="req-crash-3")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert "hunter2" not in response.content.decode()
    logged = _error_lines_of(json_log, "req-crash-3")
    assert any(LOGGED_DETAIL in line.get("exc_info", "") for line in logged), logged
    _assert_no_secret_in(json_log)


def _assert_no_secret_in(json_log) -> None:
    """Invariant 5: the card number (and the password) in the exception never reach the log."""
    text = json_log.text()
    for secret in ("hunter2", "4242 4242 4242 4242", "4242424242424242"):
        assert secret not in text


def test_body_over_upload_limit_then_413_envelope(customer_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = customer_api.patch("/api/v1/me", {"first_name": "x" * 2048}, format="json")

    assert_error(response, 413, "payload_too_large")
