"""Edits that cannot lose a sale (issue 15 item 5): stock changes guarded by the value they were based on,
only changed fields written, the admin never writes stock, absurd money exponents are form errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from catalog.errors import StockChanged
from catalog.models import Product
from catalog.services import product_update
from config.money import MAX_AMOUNT, MoneyFormField
from orders.services.terms import terms_forget
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory, ProductFactory
from wallets.ledger import wallet_adjust, wallet_id_for

pytestmark = pytest.mark.django_db
ABSURD = ["1e999999999", "1E+999999", "-1e999999999", "9e18", "1e-999999999", "NaN", "Infinity", "0x10"]


@pytest.fixture(autouse=True)
def _forget_product_terms() -> Any:
    terms_forget()
    yield
    terms_forget()


@pytest.fixture
def dashboard(merchant: Any) -> Client:
    client = Client()
    client.force_login(merchant)
    return client


def _buy_one(product: Product) -> None:
    """A customer buys one unit through the API (wallet), as a real sale in between would."""
    buyer = CustomerFactory.create()
    wallet_adjust(account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=100_000, reason="t", actor=None)
    response = client_for(buyer).post(
        "/api/v1/orders", {"product": product.id, "payment_method": "wallet"}, format="json"
    )
    assert response.status_code == 201, response.content


def _form_fields(page: str) -> dict[str, str]:
    """The form exactly as the browser would post it back (inputs and textareas as rendered)."""
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    fields.update(re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>\s*([^<]*)</textarea>', page))
    fields.pop("csrfmiddlewaretoken", None)
    if 'name="is_active"' in page and "checked" in page.split('name="is_active"')[1][:40]:
        fields["is_active"] = "on"
    return fields


# --- the service -----------------------------------------------------------------------------------


def test_product_update_when_expected_stock_stale_then_stock_changed_and_nothing_written(merchant: Any) -> None:
    product = ProductFactory.create(merchant=merchant, stock=4, name="Old")

    with pytest.raises(StockChanged) as caught:
        product_update(merchant=merchant, product_id=product.id, stock=10, name="New", expected_stock=5)

    product.refresh_from_db()
    assert (product.stock, product.name) == (4, "Old")
    assert (caught.value.code, caught.value.status, caught.value.param) == ("invalid_status", 409, "stock")
    assert "now 4" in caught.value.message


def test_product_update_when_expected_stock_current_then_set(merchant: Any) -> None:
    product = ProductFactory.create(merchant=merchant, stock=None)

    product_update(merchant=merchant, product_id=product.id, stock=3, expected_stock=None)

    product.refresh_from_db()
    assert product.stock == 3


# --- the API ---------------------------------------------------------------------------------------


def test_patch_when_expected_stock_stale_then_409_and_the_sold_unit_stays_sold(merchant: Any) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5)
    _buy_one(product)

    response = client_for(merchant).patch(
        f"/api/v1/products/{product.id}", {"stock": 10, "expected_stock": 5}, format="json"
    )

    assert_error(response, 409, "invalid_status", "stock")
    product.refresh_from_db()
    assert product.stock == 4


def test_patch_when_expected_stock_current_or_absent_then_set(merchant: Any) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5)
    api = client_for(merchant)

    guarded = api.patch(f"/api/v1/products/{product.id}", {"stock": 8, "expected_stock": 5}, format="json")
    plain = api.patch(f"/api/v1/products/{product.id}", {"stock": 2}, format="json")

    assert guarded.status_code == 200 and guarded.json()["stock"] == 8
    assert plain.status_code == 200 and plain.json()["stock"] == 2


def test_patch_when_expected_stock_without_stock_then_400(merchant: Any) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5)

    response = client_for(merchant).patch(f"/api/v1/products/{product.id}", {"expected_stock": 5}, format="json")

    assert_error(response, 400, "validation_error", "expected_stock")


# --- the dashboard: the stale-form race --------------------------------------------------------------


def test_dashboard_edit_when_unit_sold_after_form_loaded_then_stock_change_refused(
    dashboard: Client, merchant: Any
) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5, price=1000)
    page = dashboard.get(f"/dashboard/products/{product.id}/edit/").content.decode()
    form = _form_fields(page)
    assert form["stock"] == "5" and form["stock_based_on"] == "5"
    _buy_one(product)  # the stock is 4 now

    response = dashboard.post(f"/dashboard/products/{product.id}/edit/", {**form, "stock": "6"})

    assert response.status_code == 200
    assert "The stock changed since this edit was based on it (it is now 4)" in response.content.decode()
    product.refresh_from_db()
    assert product.stock == 4


def test_dashboard_edit_when_unit_sold_and_only_name_changed_then_saved_and_unit_stays_sold(
    dashboard: Client, merchant: Any
) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5, price=1000)
    form = _form_fields(dashboard.get(f"/dashboard/products/{product.id}/edit/").content.decode())
    _buy_one(product)

    response = dashboard.post(f"/dashboard/products/{product.id}/edit/", {**form, "name": "Renamed"})

    assert response.status_code == 302, response.context and response.context["form"].errors
    product.refresh_from_db()
    assert (product.name, product.stock) == ("Renamed", 4)


def test_dashboard_edit_when_other_field_changed_elsewhere_then_not_written_back(
    dashboard: Client, merchant: Any
) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5, price=1000, description="old")
    form = _form_fields(dashboard.get(f"/dashboard/products/{product.id}/edit/").content.decode())
    product_update(merchant=merchant, product_id=product.id, price=2000)  # the API changes the price meanwhile

    response = dashboard.post(f"/dashboard/products/{product.id}/edit/", {**form, "description": "new"})

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.description, product.stock) == ("new", 5)


@pytest.mark.parametrize("typed", ABSURD)
def test_dashboard_money_when_absurd_exponent_then_form_error_not_500(
    dashboard: Client, merchant: Any, typed: str
) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5, price=1000)
    form = _form_fields(dashboard.get(f"/dashboard/products/{product.id}/edit/").content.decode())

    edit = dashboard.post(f"/dashboard/products/{product.id}/edit/", {**form, "price": typed})
    withdraw = dashboard.post("/dashboard/withdrawals/", {"amount": typed})

    assert edit.status_code == 200 and edit.context["form"].errors.get("price")
    assert withdraw.status_code == 200 and withdraw.context["form"].errors.get("amount")
    product.refresh_from_db()
    assert product.price == 1000


@pytest.mark.parametrize(
    ("typed", "amount"), [("10.50", 1050), ("1e3", 100000), ("1,000", 100000), ("0.01", 1), ("1000000000", MAX_AMOUNT)]
)
def test_money_form_field_when_plain_amount_then_minor_units(typed: str, amount: int) -> None:
    assert MoneyFormField(currency="usd").clean(typed) == amount


@pytest.mark.parametrize("typed", [*ABSURD, "1000000000.01", "0", "-5", "1.005", "abc"])
def test_money_form_field_when_absurd_or_invalid_then_validation_error(typed: str) -> None:
    with pytest.raises(ValidationError):
        MoneyFormField(currency="usd").clean(typed)


# --- the admin -----------------------------------------------------------------------------------


def test_admin_product_change_when_unit_sold_meanwhile_then_stock_not_overwritten(staff: Any, merchant: Any) -> None:
    product = ProductFactory.create(merchant=merchant, stock=5, price=1000)
    admin = Client()
    admin.force_login(staff)
    page = admin.get(f"/admin/catalog/product/{product.id}/change/")
    assert 'name="stock"' not in page.content.decode()
    form = {**_form_fields(page.content.decode()), "price": "4200", "stock": "5"}
    form.setdefault("merchant", merchant.pk)
    _buy_one(product)

    response = admin.post(f"/admin/catalog/product/{product.id}/change/", form)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    product.refresh_from_db()
    assert (product.price, product.stock) == (4200, 4)
