"""The merchant dashboard through Django's test client: login, permissions, CSRF and every page."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from catalog.models import Product
from orders.models import Order, WebhookEndpoint
from orders.services.terms import terms_forget
from orders.services.webhook_endpoints import webhook_endpoint_create
from tests.conftest import client_for
from tests.factories import PASSWORD, CustomerFactory, MerchantFactory, ProductFactory, StaffFactory
from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Withdrawal
from wallets.selectors import wallet_summary

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/products/", "/dashboard/products/new/", "/dashboard/sales/"]
PAGES += ["/dashboard/withdrawals/", "/dashboard/webhooks/"]
PRODUCT_FORM = {
    "name": "Synth presets",
    "description": "128 patches",
    "price": "10.50",
    "stock": "",
    "fulfillment": "https://files.example/presets.zip",
    "is_active": "on",
}


@pytest.fixture(autouse=True)
def _forget_product_terms():
    terms_forget()
    yield
    terms_forget()


@pytest.fixture
def dashboard(merchant) -> Client:
    client = Client()
    client.force_login(merchant)
    return client


def _fund(user, amount: int) -> None:
    wallet_adjust(account_id=wallet_id_for(user_id=user.pk, role=user.role), amount=amount, reason="test", actor=None)


def _sell(merchant, price: int = 1000):
    """A paid wallet order of one of ``merchant``'s products, placed through the API."""
    product = ProductFactory.create(merchant=merchant, price=price, stock=5)
    buyer = CustomerFactory.create()
    _fund(buyer, 10_000)
    response = client_for(buyer).post(
        "/api/v1/orders", {"product": product.id, "payment_method": "wallet"}, format="json"
    )
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["id"]), buyer


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_dashboard_when_anonymous_then_redirected_to_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_dashboard_when_merchant_then_every_page_renders(dashboard, path):
    response = dashboard.get(path)

    assert response.status_code == 200
    assert b"Sign out" in response.content


@pytest.mark.parametrize("factory", [CustomerFactory, StaffFactory])
def test_dashboard_when_signed_in_but_not_merchant_then_403(client, factory):
    client.force_login(factory())

    for path in PAGES:
        assert client.get(path).status_code == 403


def test_login_when_merchant_credentials_then_signed_in_and_redirected(client, merchant):
    page = client.get("/dashboard/login/")

    response = client.post(
        "/dashboard/login/", {"username": merchant.email.upper(), "password": PASSWORD, "next": "/dashboard/sales/"}
    )

    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content
    assert response.status_code == 302 and response["Location"] == "/dashboard/sales/"
    assert client.get("/dashboard/").status_code == 200


def test_login_when_customer_then_refused_and_not_signed_in(client):
    customer = CustomerFactory.create()

    response = client.post("/dashboard/login/", {"username": customer.email, "password": PASSWORD})

    assert response.status_code == 200
    assert b"merchant accounts only" in response.content
    assert "_auth_user_id" not in client.session


def test_login_when_wrong_password_then_refused(client, merchant):
    response = client.post("/dashboard/login/", {"username": merchant.email, "password": "wrong"})

    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_login_when_too_many_attempts_then_429(client, merchant, settings):
    settings.THROTTLE_SCALE = 0.1  # two attempts a minute

    statuses = [client.post("/dashboard/login/", {"username": merchant.email, "password": "x"}).status_code]
    statuses += [client.post("/dashboard/login/", {"username": merchant.email, "password": "x"}).status_code]
    blocked = client.post("/dashboard/login/", {"username": merchant.email, "password": PASSWORD})

    assert statuses == [200, 200]
    assert blocked.status_code == 429 and "_auth_user_id" not in client.session


def test_logout_when_posted_then_signed_out(dashboard):
    response = dashboard.post("/dashboard/logout/")

    assert response.status_code == 302
    assert dashboard.get("/dashboard/").status_code == 302


def test_forms_when_csrf_token_missing_then_403_and_nothing_created(merchant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(merchant)

    response = client.post("/dashboard/products/new/", PRODUCT_FORM)

    assert response.status_code == 403
    assert not Product.objects.exists()


def test_forms_when_csrf_token_sent_then_accepted(merchant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(merchant)
    page = client.get("/dashboard/products/new/")
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert found is not None
    token = found.group(1).decode()

    response = client.post("/dashboard/products/new/", {**PRODUCT_FORM, "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert Product.objects.filter(merchant=merchant).count() == 1


# --- products ------------------------------------------------------------------------------------


def test_product_create_when_form_valid_then_product_in_public_api(dashboard, merchant, api):
    response = dashboard.post("/dashboard/products/new/", PRODUCT_FORM)

    assert response.status_code == 302 and response["Location"].startswith("/dashboard/products/prd_")
    listed = api.get("/api/v1/products", {"merchant": merchant.id}).json()["results"]
    assert len(listed) == 1
    item = listed[0]
    assert (item["name"], item["price"], item["stock"], item["currency"]) == (
        "Synth presets",
        1050,
        None,
        settings.PLATFORM_CURRENCY,
    )
    assert Product.objects.get(pk=item["id"]).fulfillment == PRODUCT_FORM["fulfillment"]
    assert "Synth presets" in dashboard.get("/dashboard/products/").content.decode()


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"price": "0"}, "price"),
        ({"price": "-1"}, "price"),
        ({"price": "1.234"}, "price"),
        ({"price": "ten"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "1000000.01"}, "price"),
        ({"name": ""}, "name"),
        ({"stock": "-1"}, "stock"),
        ({"fulfillment": "  "}, "fulfillment"),
    ],
)
def test_product_create_when_form_invalid_then_errors_and_nothing_created(dashboard, changes, field):
    response = dashboard.post("/dashboard/products/new/", {**PRODUCT_FORM, **changes})

    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not Product.objects.exists()


def test_product_edit_when_price_stock_active_changed_then_api_shows_it(
    dashboard, merchant, api, django_capture_on_commit_callbacks
):
    product = ProductFactory.create(merchant=merchant, price=1000, stock=3)
    api.get(f"/api/v1/products/{product.id}")  # cached before the edit
    form = dashboard.get(f"/dashboard/products/{product.id}/edit/")

    response = dashboard.post(
        f"/dashboard/products/{product.id}/edit/",
        {**PRODUCT_FORM, "name": product.name, "price": "25.00", "stock": "7", "is_active": "on"},
    )

    assert form.status_code == 200 and b'value="10.00"' in form.content
    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.price, product.stock) == (2500, 7)
    with django_capture_on_commit_callbacks(execute=True):
        unchecked = {key: value for key, value in PRODUCT_FORM.items() if key != "is_active"}
        deactivated = dashboard.post(f"/dashboard/products/{product.id}/edit/", unchecked)
    assert deactivated.status_code == 302
    assert api.get(f"/api/v1/products/{product.id}").status_code == 404


def test_product_edit_when_other_merchants_product_then_404(dashboard):
    product = ProductFactory.create()

    assert dashboard.get(f"/dashboard/products/{product.id}/edit/").status_code == 404
    assert dashboard.post(f"/dashboard/products/{product.id}/edit/", PRODUCT_FORM).status_code == 404
    product.refresh_from_db()
    assert product.name != PRODUCT_FORM["name"]


def test_product_delete_when_posted_then_soft_deleted_and_listed_as_deleted(dashboard, merchant, api):
    product = ProductFactory.create(merchant=merchant)

    assert dashboard.get(f"/dashboard/products/{product.id}/delete/").status_code == 405
    response = dashboard.post(f"/dashboard/products/{product.id}/delete/")

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.deleted_at is not None
    assert api.get(f"/api/v1/products/{product.id}").status_code == 404
    page = dashboard.get("/dashboard/products/").content.decode()
    assert product.id in page and "deleted" in page


def test_product_delete_when_other_merchants_product_then_kept(dashboard):
    product = ProductFactory.create()

    dashboard.post(f"/dashboard/products/{product.id}/delete/")

    product.refresh_from_db()
    assert product.deleted_at is None


# --- overview, sales, refunds --------------------------------------------------------------------


def test_overview_when_sales_exist_then_balance_totals_and_recent_sales(dashboard, merchant):
    order, _ = _sell(merchant, price=1000)

    response = dashboard.get("/dashboard/")

    page = response.content.decode()
    summary = wallet_summary(merchant)
    assert summary.balance == order.merchant_net > 0
    assert f'id="balance">{_fmt(summary.balance)}' in page
    assert f'<td class="num">{_fmt(1000)}</td>' in page  # gross, in the periods table
    assert f'<td class="num">{_fmt(order.merchant_net)}</td>' in page
    assert order.id in page


def _fmt(amount: int) -> str:
    from config.money import Money

    return str(Money(amount, settings.PLATFORM_CURRENCY))


def test_sales_when_filtered_by_status_then_only_that_status(dashboard, merchant):
    order, _ = _sell(merchant)
    other_merchants_order, _ = _sell(MerchantFactory.create())

    everything = dashboard.get("/dashboard/sales/").content.decode()
    paid = dashboard.get("/dashboard/sales/", {"status": "paid"}).content.decode()
    refunded = dashboard.get("/dashboard/sales/", {"status": "refunded"}).content.decode()

    assert order.id in everything and other_merchants_order.id not in everything
    assert order.id in paid
    assert order.id not in refunded


def test_sale_detail_when_other_merchants_order_then_404(dashboard):
    order, _ = _sell(MerchantFactory.create())

    assert dashboard.get(f"/dashboard/sales/{order.id}/").status_code == 404
    assert dashboard.post(f"/dashboard/sales/{order.id}/", {"amount": "", "reason": "x"}).status_code == 404
    order.refresh_from_db()
    assert order.status == "paid"


def test_refund_when_partial_then_order_partially_refunded_and_buyer_credited(dashboard, merchant):
    order, buyer = _sell(merchant, price=1000)
    before = wallet_summary(buyer).balance

    response = dashboard.post(
        f"/dashboard/sales/{order.id}/", {"amount": "4.00", "reason": "asked nicely", "confirm": "yes"}
    )

    assert response.status_code == 302, response.context and response.context["form"].errors
    order.refresh_from_db()
    assert order.status == "partially_refunded"
    assert wallet_summary(buyer).balance == before + 400
    assert "asked nicely" in dashboard.get(f"/dashboard/sales/{order.id}/").content.decode()


def test_refund_when_amount_empty_then_rest_refunded(dashboard, merchant):
    order, _ = _sell(merchant)

    dashboard.post(f"/dashboard/sales/{order.id}/", {"amount": "", "reason": "", "confirm": "yes"})

    order.refresh_from_db()
    assert order.status == "refunded"


def test_refund_when_more_than_paid_then_form_error_and_nothing_refunded(dashboard, merchant):
    order, buyer = _sell(merchant, price=1000)
    before = wallet_summary(buyer).balance

    response = dashboard.post(f"/dashboard/sales/{order.id}/", {"amount": "10.01", "reason": "", "confirm": "yes"})

    assert response.status_code == 200
    assert response.context["form"].errors
    order.refresh_from_db()
    assert order.status == "paid" and wallet_summary(buyer).balance == before


# --- withdrawals ---------------------------------------------------------------------------------


def test_withdrawal_when_requested_then_held_and_listed(dashboard, merchant):
    _fund(merchant, 5000)

    response = dashboard.post("/dashboard/withdrawals/", {"amount": "20.00"})

    assert response.status_code == 302
    withdrawal = Withdrawal.objects.get(user=merchant)
    assert (withdrawal.amount, withdrawal.status) == (2000, "pending")
    summary = wallet_summary(merchant)
    assert (summary.balance, summary.pending) == (3000, 2000)
    assert withdrawal.id in dashboard.get("/dashboard/withdrawals/").content.decode()


def test_withdrawal_when_more_than_balance_then_form_error(dashboard, merchant):
    _fund(merchant, 1000)

    response = dashboard.post("/dashboard/withdrawals/", {"amount": "20.00"})

    assert response.status_code == 200
    assert response.context["form"].errors["amount"]
    assert not Withdrawal.objects.exists()


# --- order webhooks ------------------------------------------------------------------------------


def test_webhook_endpoint_when_added_then_secret_shown_once_and_removable(dashboard, merchant):
    response = dashboard.post("/dashboard/webhooks/", {"url": "http://127.0.0.1:9/hooks"})

    endpoint = WebhookEndpoint.objects.get(merchant=merchant)
    assert response.status_code == 200 and endpoint.secret in response.content.decode()
    later = dashboard.get("/dashboard/webhooks/").content.decode()
    assert endpoint.url in later and endpoint.secret not in later
    dashboard.post(f"/dashboard/webhooks/{endpoint.id}/delete/")
    endpoint.refresh_from_db()
    assert endpoint.deleted_at is not None


def test_webhook_endpoint_when_url_refused_then_form_error(dashboard, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    response = dashboard.post("/dashboard/webhooks/", {"url": "http://127.0.0.1/hooks"})

    assert response.status_code == 200 and response.context["form"].errors["url"]
    assert not WebhookEndpoint.objects.exists()


def test_webhook_endpoint_when_other_merchants_then_not_removed(dashboard):
    other = MerchantFactory.create()
    endpoint = webhook_endpoint_create(merchant=other, url="http://127.0.0.1:9/x")

    dashboard.post(f"/dashboard/webhooks/{endpoint.id}/delete/")

    endpoint.refresh_from_db()
    assert endpoint.deleted_at is None
