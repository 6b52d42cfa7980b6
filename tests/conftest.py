from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

from accounts.services import tokens_for
from tests.factories import CustomerFactory, MerchantFactory, StaffFactory


def pytest_collection_modifyitems(config, items):
    """In CI nothing may be skipped for want of a service: fail instead."""
    if os.environ.get("CI"):
        config.pluginmanager.register(_NoSkipInCI(), "no-skip-in-ci")


class _NoSkipInCI:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.skipped and not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"


@pytest.fixture(autouse=True)
def _fresh_process_state(settings):
    """Forget in-process memories of rows a previous test's rollback removed."""
    from django.core.cache import cache

    from wallets import services as wallet_services

    wallet_services.platform_accounts_forget()
    wallet_services._wallet_ids.clear()
    cache.clear()
    settings.THROTTLE_SCALE = 0
    yield


@pytest.fixture
def api():
    return APIClient()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
    client.user = user
    return client


@pytest.fixture
def customer(db):
    return CustomerFactory()


@pytest.fixture
def merchant(db):
    return MerchantFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def customer_api(customer):
    return client_for(customer)


@pytest.fixture
def merchant_api(merchant):
    return client_for(merchant)


@pytest.fixture
def staff_api(staff):
    return client_for(staff)


def assert_error(response, status: int, code: str, param: str | None = None) -> dict:
    """Asserts the contract's error envelope and returns its body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    error = body["error"]
    assert error["code"] == code, error
    assert error["request_id"], error
    assert set(error) >= {"type", "code", "message", "param", "request_id"}
    if param is not None:
        assert error["param"] == param, error
    return error


def pytest_runtest_setup(item):
    """``@pytest.mark.postgres`` tests (row locks, concurrency) run only on PostgreSQL.

    They skip themselves elsewhere; in CI, which runs on PostgreSQL, a skip is a failure.
    """
    if item.get_closest_marker("postgres") is not None:
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://…)")
