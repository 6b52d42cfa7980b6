"""The admin's tests: staff users per role signed in to the admin, and the money they act on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import tokens_for
from orders.models import Order
from payments.models import Payment
from tests.backoffice.conftest import user_in_role
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Withdrawal
from wallets.withdrawals import withdrawal_request


def fund(user: User, amount: int) -> str:
    """Credits ``user``'s wallet through the ledger; returns the wallet's account id."""
    account_id = wallet_id_for(user_id=user.pk, role=user.role, currency=settings.PLATFORM_CURRENCY)
    wallet_adjust(account_id=account_id, amount=amount, reason="test funding", actor=None)
    return account_id


def signed_in(user: User) -> Client:
    """A browser-like client with ``user``'s admin session (no second factor: ``STAFF_OTP_REQUIRED`` is off)."""
    client = Client()
    client.force_login(user)
    return client


def totp_now(device: TOTPDevice) -> str:
    """The device's current code, as the staff user's authenticator app shows it."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def paid_wallet_order(price: int = 5000, buyer: User | None = None) -> Order:
    """A customer's order paid from the wallet through the API (the one-statement purchase)."""
    buyer = buyer or CustomerFactory.create()
    product = ProductFactory.create(merchant=MerchantFactory.create(), price=price, stock=10)
    fund(buyer, price * 3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(buyer)['access']}")
    response = client.post("/api/v1/orders", {"product": product.pk, "payment_method": "wallet"}, format="json")
    assert response.status_code == 201, response.content
    return Order.objects.select_related("payment", "buyer").get(pk=response.json()["id"])


def payment_of(order: Order) -> Payment:
    """The order's payment (a paid order always has one)."""
    assert order.payment is not None
    return order.payment


def pending_withdrawal(amount: int) -> Withdrawal:
    merchant = MerchantFactory.create()
    fund(merchant, amount)
    return withdrawal_request(user=merchant, amount=amount)


@pytest.fixture
def role_client(db: None) -> Callable[[str], tuple[User, Client]]:
    """``role_client("finance")``: a new user in that role and an admin client signed in as them."""

    def make(role: str) -> tuple[User, Client]:
        user = user_in_role(role)
        return user, signed_in(user)

    return make
