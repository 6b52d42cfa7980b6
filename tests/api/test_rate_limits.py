"""Rate limits: stricter on auth and money endpoints, 429 rate_limited with Retry-After, THROTTLE_SCALE."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_error, client_for
from tests.factories import PASSWORD, CustomerFactory, MerchantFactory


def _assert_limited(response) -> None:
    assert_error(response, 429, "rate_limited")
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response["Retry-After"]) >= 1


def _statuses(send, times: int) -> list[int]:
    return [send(i).status_code for i in range(times)]


@pytest.fixture
def scale_1(settings):
    settings.THROTTLE_SCALE = 1
    return settings


@pytest.mark.django_db
def test_login_when_over_10_attempts_per_email_then_429(scale_1, customer):
    api = APIClient()

    def send(i):
        return api.post("/api/v1/auth/token", {"email": customer.email, "password": f"wrong-{i}"}, format="json")

    assert 429 not in _statuses(send, 10)
    _assert_limited(send(10))
    # The right password is refused too while the account is locked down.
    _assert_limited(api.post("/api/v1/auth/token", {"email": customer.email, "password": PASSWORD}, format="json"))


@pytest.mark.django_db
def test_login_when_over_20_attempts_per_ip_across_emails_then_429(scale_1):
    api = APIClient(REMOTE_ADDR="10.1.1.1")

    def send(i):
        return api.post("/api/v1/auth/token", {"email": f"nobody{i}@example.test", "password": "x"}, format="json")

    assert 429 not in _statuses(send, 20)
    _assert_limited(send(20))
    other_ip = APIClient(REMOTE_ADDR="10.1.1.2")
    assert (
        other_ip.post("/api/v1/auth/token", {"email": "a@example.test", "password": "x"}, format="json").status_code
        == 401
    )


@pytest.mark.django_db
def test_register_when_over_20_per_ip_then_429(scale_1):
    api = APIClient()

    def send(i):
        return api.post(
            "/api/v1/auth/register", {"email": f"n{i}@example.test", "password": "short", "role": "x"}, format="json"
        )

    assert 429 not in _statuses(send, 20)
    _assert_limited(send(20))


@pytest.mark.django_db
def test_token_refresh_when_over_30_per_ip_then_429(scale_1):
    api = APIClient()

    def send(i):
        return api.post("/api/v1/auth/token/refresh", {"refresh": f"bad-{i}"}, format="json")

    assert 429 not in _statuses(send, 30)
    _assert_limited(send(30))


@pytest.mark.django_db
def test_order_post_when_over_30_per_user_then_429_and_other_users_unaffected(scale_1):
    buyer, other = client_for(CustomerFactory.create()), client_for(CustomerFactory.create())

    def send(i, client=buyer):
        return client.post("/api/v1/orders", {"product": f"prd_missing{i}", "payment_method": "wallet"}, format="json")

    assert 429 not in _statuses(send, 30)
    _assert_limited(send(30))
    assert send(0, other).status_code != 429
    # Reading is not throttled by the payments limit.
    assert buyer.get("/api/v1/orders").status_code == 200


@pytest.mark.django_db
def test_deposit_post_when_over_30_per_user_then_429(scale_1):
    client = client_for(CustomerFactory.create())

    def send(i):
        return client.post("/api/v1/wallet/deposits", {"amount": 0, "payment_method": "pm_x"}, format="json")

    assert 429 not in _statuses(send, 30)
    _assert_limited(send(30))


@pytest.mark.django_db
def test_payment_method_post_when_over_30_per_user_then_429(scale_1):
    client = client_for(CustomerFactory.create())

    def send(i):
        return client.post("/api/v1/payment-methods", {}, format="json")

    assert 429 not in _statuses(send, 30)
    _assert_limited(send(30))


@pytest.mark.django_db
def test_refund_post_when_over_30_per_user_then_429(scale_1):
    client = client_for(MerchantFactory.create())

    def send(i):
        return client.post("/api/v1/refunds", {"order": f"ord_missing{i}"}, format="json")

    assert 429 not in _statuses(send, 30)
    _assert_limited(send(30))


@pytest.mark.django_db
def test_withdrawal_post_when_over_10_per_user_then_429(scale_1):
    client = client_for(CustomerFactory.create())

    def send(i):
        return client.post("/api/v1/wallet/withdrawals", {"amount": 0}, format="json")

    assert 429 not in _statuses(send, 10)
    _assert_limited(send(10))
    assert client.get("/api/v1/wallet/withdrawals").status_code == 200


@pytest.mark.django_db
def test_throttle_scale_multiplies_every_limit(settings):
    settings.THROTTLE_SCALE = 2
    client = client_for(CustomerFactory.create())

    def send(i):
        return client.post("/api/v1/wallet/withdrawals", {"amount": 0}, format="json")

    assert 429 not in _statuses(send, 20)
    _assert_limited(send(20))


@pytest.mark.django_db
def test_throttle_scale_0_turns_limits_off(settings, customer):
    settings.THROTTLE_SCALE = 0
    api = APIClient()

    def send(i):
        return api.post("/api/v1/auth/token", {"email": customer.email, "password": "wrong"}, format="json")

    assert set(_statuses(send, 40)) == {401}


@pytest.mark.django_db
def test_rate_limited_post_with_idempotency_key_is_not_stored(scale_1):
    from accounts.models import IdempotencyKey

    client = client_for(CustomerFactory.create())
    for i in range(10):
        client.post("/api/v1/wallet/withdrawals", {"amount": 0}, format="json")

    response = client.post("/api/v1/wallet/withdrawals", {"amount": 600}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    _assert_limited(response)
    assert IdempotencyKey.objects.count() == 0
