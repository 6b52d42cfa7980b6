"""`manage.py seed_demo`: the demo's users, products and funded wallet, idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.management.commands.seed_demo import CUSTOMER_FUNDING, DEFAULT_PASSWORD
from accounts.models import User
from catalog.models import Product
from wallets.models import Entry, Posting

pytestmark = pytest.mark.django_db


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_then_logins_printed_work_and_customer_can_spend(api):
    output = _seed()

    for email in ("merchant@demo.test", "customer@demo.test", "staff@demo.test"):
        assert email in output
        response = api.post("/api/v1/auth/token", {"email": email, "password": DEFAULT_PASSWORD}, format="json")
        assert response.status_code == 200, (email, response.content)
    assert DEFAULT_PASSWORD in output
    customer_token = api.post(
        "/api/v1/auth/token", {"email": "customer@demo.test", "password": DEFAULT_PASSWORD}, format="json"
    ).json()["access"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {customer_token}")
    wallet = api.get("/api/v1/wallet")
    assert wallet.status_code == 200, wallet.content
    assert wallet.json()["balance"] == CUSTOMER_FUNDING


def test_seed_demo_then_roles_products_and_balanced_ledger():
    _seed()

    merchant = User.objects.get(email="merchant@demo.test")
    assert merchant.role == "merchant"
    assert not merchant.is_staff
    assert User.objects.get(email="staff@demo.test").is_staff
    assert not User.objects.get(email="customer@demo.test").is_staff
    products = Product.objects.filter(merchant=merchant)
    assert products.count() >= 3
    assert all(product.is_public and product.price > 0 for product in products)
    entry = Entry.objects.get(idempotency_key="seed_demo:customer-funding")
    assert sum(p.amount for p in Posting.objects.filter(entry=entry)) == 0


def test_seed_demo_when_run_twice_then_nothing_duplicated():
    _seed()
    counts = (User.objects.count(), Product.objects.count(), Entry.objects.count(), Posting.objects.count())

    _seed()

    assert (User.objects.count(), Product.objects.count(), Entry.objects.count(), Posting.objects.count()) == counts


def test_seed_demo_with_password_option_then_that_password_works(api):
    _seed()
    _seed("--password", "another-demo-password-7")

    response = api.post(
        "/api/v1/auth/token", {"email": "customer@demo.test", "password": "another-demo-password-7"}, format="json"
    )
    assert response.status_code == 200


def test_seed_demo_then_one_product_of_each_delivery_with_codes_and_a_file(tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path)
    _seed()
    _seed()  # idempotent: no second pool, no duplicate codes

    merchant = User.objects.get(email="merchant@demo.test")
    products = {p.delivery: p for p in Product.objects.filter(merchant=merchant)}
    assert set(products) == {"text", "codes", "license_key", "file"}
    assert products["codes"].stock == 3 == products["codes"].codes.filter(status="available").count()
    assert products["file"].file.size > 0
