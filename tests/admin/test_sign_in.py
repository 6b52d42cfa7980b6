"""Staff sign-in: a TOTP second factor when ``STAFF_OTP_REQUIRED`` (``DEBUG`` off), in the admin and in
``auth/token``; failed sign-ins to the admin and the dashboard throttled per user and address (django-axes)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import staff_totp_device
from tests.admin.conftest import totp_now
from tests.backoffice.conftest import user_in_role
from tests.factories import PASSWORD, CustomerFactory


@pytest.fixture
def otp_on(settings: Any) -> None:
    settings.STAFF_OTP_REQUIRED = True


def _admin_sign_in(client: Client, user: User, password: str = PASSWORD, otp: str = "", **extra: Any) -> Any:
    return client.post(reverse("admin:login"), {"username": user.email, "password": password, "otp_token": otp,
                                                "next": "/admin/"}, **extra)  # fmt: skip


def test_admin_sign_in_when_otp_required_and_no_code_then_refused(db: None, otp_on: None) -> None:
    staff = user_in_role("finance")
    staff_totp_device(user=staff)
    client = Client()
    response = _admin_sign_in(client, staff)
    assert response.status_code == 200 and "otp_required" in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302
    wrong = _admin_sign_in(client, staff, otp="000000")
    assert wrong.status_code == 200 and "otp_required" in wrong.content.decode()


def test_admin_sign_in_when_otp_required_and_valid_code_then_in(db: None, otp_on: None) -> None:
    staff = user_in_role("support")
    device = staff_totp_device(user=staff)
    client = Client()
    response = _admin_sign_in(client, staff, otp=totp_now(device))
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200


def test_admin_session_when_password_only_then_not_admitted_while_otp_required(db: None, otp_on: None) -> None:
    staff = user_in_role("finance")
    client = Client()
    client.force_login(staff)  # a session without a verified device (e.g. from the dashboard)
    assert client.get(reverse("admin:index")).status_code == 302


def test_auth_token_when_staff_without_otp_then_401_otp_required(db: None, otp_on: None) -> None:
    staff = user_in_role("finance")
    device = staff_totp_device(user=staff)
    api = APIClient()
    refused = api.post("/api/v1/auth/token", {"email": staff.email, "password": PASSWORD}, format="json")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "otp_required"
    ok = api.post("/api/v1/auth/token", {"email": staff.email, "password": PASSWORD, "otp": totp_now(device)},
                  format="json")  # fmt: skip
    assert ok.status_code == 200 and set(ok.json()) == {"access", "refresh"}
    # A wrong code (django-otp also slows down repeated failures of one device).
    wrong = api.post("/api/v1/auth/token", {"email": staff.email, "password": PASSWORD, "otp": "123"}, format="json")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "otp_required"


def test_auth_token_when_customer_or_otp_off_then_no_code_needed(db: None, settings: Any) -> None:
    settings.STAFF_OTP_REQUIRED = True
    customer = CustomerFactory.create()
    api = APIClient()
    assert api.post("/api/v1/auth/token", {"email": customer.email, "password": PASSWORD},
                    format="json").status_code == 200  # fmt: skip
    settings.STAFF_OTP_REQUIRED = False
    staff = user_in_role("finance")
    assert api.post("/api/v1/auth/token", {"email": staff.email, "password": PASSWORD},
                    format="json").status_code == 200  # fmt: skip


def test_admin_sign_in_when_failures_from_one_address_then_locked_out_there_only(db: None, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    staff = user_in_role("finance")
    attacker = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.66"}
    client = Client()
    for _ in range(2):
        assert _admin_sign_in(client, staff, password="wrong-password", **attacker).status_code == 200
    assert _admin_sign_in(client, staff, password="wrong-password", **attacker).status_code == 429
    locked = _admin_sign_in(client, staff, **attacker)  # even the right password, from that address
    assert locked.status_code == 429
    # The same proxy, another client address (NUM_PROXIES=1 reads it from X-Forwarded-For): not locked.
    elsewhere = _admin_sign_in(Client(), staff, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.77")
    assert elsewhere.status_code == 302


def test_dashboard_sign_in_when_failures_then_locked_out(db: None, settings: Any) -> None:
    from tests.factories import MerchantFactory

    settings.AXES_FAILURE_LIMIT = 2
    merchant = MerchantFactory.create()
    client = Client()
    url = reverse("dashboard:login")
    for _ in range(2):
        client.post(url, {"username": merchant.email, "password": "nope"})
    assert client.post(url, {"username": merchant.email, "password": PASSWORD}).status_code == 429
