from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import tokens_for
from tests.factories import CustomerFactory, MerchantFactory, StaffFactory


def pytest_collection_modifyitems(config, items):
    """Nothing may be skipped, on any machine: a skip is reported as a failure."""
    config.pluginmanager.register(_NoSkip(), "no-skip")


class _NoSkip:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.skipped and not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            report.longrepr = f"skipped, which is not allowed: {report.longrepr}"


@pytest.fixture(autouse=True)
def _fresh_process_state(settings):
    """Forget in-process memories of rows a previous test's rollback removed."""
    from django.core.cache import cache

    from wallets import ledger

    ledger.platform_accounts_forget()
    ledger.wallet_ids_forget()
    cache.clear()
    settings.THROTTLE_SCALE = 0
    yield


@pytest.fixture
def api():
    return APIClient()


class SignedInClient(APIClient):
    """An API client that sends ``user``'s bearer token (``authorization``) with every request."""

    def __init__(self, user: User) -> None:
        super().__init__()
        self.user = user
        self.authorization = f"Bearer {tokens_for(user)['access']}"
        self.credentials(HTTP_AUTHORIZATION=self.authorization)


def client_for(user: User) -> SignedInClient:
    return SignedInClient(user)


@pytest.fixture
def customer(db):
    return CustomerFactory.create()


@pytest.fixture
def merchant(db):
    return MerchantFactory.create()


@pytest.fixture
def staff(db):
    return StaffFactory.create()


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


# --- Stripe: one local fake server (localstripe) per test run ----------------------------------


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fake_stripe_server():
    """Starts ``scripts/fake_stripe.py`` on a free 127.0.0.1 port for the whole run; yields its base URL.

    The server keeps no state on disk and stops by itself if this process dies.
    """
    import subprocess
    import sys
    import time
    from pathlib import Path

    import requests

    root = Path(__file__).resolve().parent.parent
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(root / "scripts" / "fake_stripe.py"),
            "--port",
            str(port),
            "--no-persist",
            "--quiet",
            "--parent-pid",
            str(os.getpid()),
            "--max-lifetime",
            "7200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{url}/v1/customers/cus_ping", timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"fake Stripe server did not start: {stderr[-2000:]}") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


class FakeStripe:
    """Handle on the local fake Stripe server for one test."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        import requests

        requests.delete(f"{self.url}/_config/data", timeout=5).raise_for_status()

    def create_payment_method(self, number: str = "4242424242424242") -> str:
        """A card PaymentMethod, not attached to anyone (what Stripe.js would hand the client)."""
        import stripe

        method = stripe.PaymentMethod.create(
            type="card",
            card={"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            api_key=stripe.api_key,
        )
        return method.id

    def attach_card(self, user, number: str = "4242424242424242") -> str:
        """Saves a card for ``user`` (attached at Stripe, recorded by us); returns its ``pm_…`` id."""
        from payments.services.cards import payment_method_attach

        payment_method_id = self.create_payment_method(number)
        payment_method_attach(user=user, payment_method_id=payment_method_id)
        return payment_method_id

    def unreachable(self):
        """Context manager: every Stripe call fails to connect (a closed local port) while inside."""
        return _StripeUnreachable(self)


class _StripeUnreachable:
    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    def __enter__(self):
        import stripe

        self.saved = stripe.api_base
        stripe.api_base = f"http://127.0.0.1:{_free_port()}"
        return self

    def __exit__(self, *exc):
        import stripe

        stripe.api_base = self.saved
        return False


@pytest.fixture
def fake_stripe(fake_stripe_server, settings, db):
    """Points Stripe (and dj-stripe) at the run's fake server, with its state reset and dj-stripe's rows ready.

    ``fake_stripe.attach_card(user, number="4242424242424242") -> "pm_…"`` gives a user a saved card.
    """
    import stripe

    from payments.services.setup import stripe_setup

    fake = FakeStripe(fake_stripe_server)
    fake.reset()
    saved_base, saved_retries = stripe.api_base, stripe.max_network_retries
    settings.STRIPE_API_BASE = fake_stripe_server
    stripe.api_base = fake_stripe_server
    # A refused connection is retried with backoff by the SDK: keep unreachable tests quick.
    stripe.max_network_retries = 0
    stripe_setup(base_url="http://127.0.0.1:9", register=False)
    yield fake
    stripe.api_base, stripe.max_network_retries = saved_base, saved_retries


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report):
    """A module skipped while collecting (``pytest.importorskip`` …) fails too."""
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped, which is not allowed: {report.longrepr}"
        _modules_skipped.append(report.nodeid)


_modules_skipped: list[str] = []


def pytest_sessionfinish(session, exitstatus):
    # A failed collect report does not count as a failed test: fail the run here.
    if _modules_skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
