"""Login and registration are rate-limited per client IP and per target email."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_error
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _real_rates(settings):
    settings.THROTTLE_SCALE = 1


def _assert_rate_limited(response) -> None:
    error = assert_error(response, 429, "rate_limited")
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_register_when_one_email_tried_from_many_ips_then_11th_is_429():
    body = {"email": "target@example.test", "password": "violet-tangerine-harbor-91", "role": "customer"}
    statuses = [
        APIClient(REMOTE_ADDR=f"10.0.0.{i}").post("/api/v1/auth/register", body, format="json").status_code
        for i in range(10)
    ]

    assert statuses == [201] + [400] * 9
    _assert_rate_limited(APIClient(REMOTE_ADDR="10.0.0.99").post("/api/v1/auth/register", body, format="json"))


def test_login_when_one_ip_tries_many_emails_then_21st_is_429_with_retry_after(customer):
    api = APIClient(REMOTE_ADDR="192.0.2.7")
    statuses = [
        api.post("/api/v1/auth/token", {"email": f"guess{i}@example.test", "password": "x"}, format="json").status_code
        for i in range(20)
    ]

    assert statuses == [401] * 20
    limited = api.post("/api/v1/auth/token", {"email": customer.email, "password": PASSWORD}, format="json")
    _assert_rate_limited(limited)
    elsewhere = APIClient(REMOTE_ADDR="192.0.2.8")
    assert (
        elsewhere.post("/api/v1/auth/token", {"email": customer.email, "password": PASSWORD}, format="json").status_code
        == 200
    )


def test_login_when_rate_limit_is_off_then_never_429(settings, customer):
    settings.THROTTLE_SCALE = 0
    api = APIClient()

    statuses = {
        api.post("/api/v1/auth/token", {"email": customer.email, "password": "wrong"}, format="json").status_code
        for _ in range(25)
    }

    assert statuses == {401}
