from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Product
from orders.models import Order, OrderEvent
from payments.models import Payment
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory, ProductFactory
from tests.orders.conftest import buy, fund
from wallets.ledger import platform_account_id, wallet_id_for
from wallets.models import Account, AccountKind, Entry

pytestmark = pytest.mark.django_db


def _balance(account_id: str) -> int:
    return Account.objects.get(pk=account_id).balance


def test_wallet_purchase_when_funded_then_paid_with_fulfillment_and_ledger(customer, customer_api, product):
    wallet = fund(customer, 5000)

    response = buy(customer_api, product.pk, quantity=2)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("ord_")
    assert body["status"] == "paid"
    assert body["product"] == product.pk
    assert (body["quantity"], body["unit_price"], body["amount"], body["currency"]) == (2, 1000, 2000, "usd")
    assert body["fulfillment"] == "KEY-AAAA-BBBB"
    assert body["client_secret"] is None
    assert body["payment"].startswith("pay_")
    product.refresh_from_db()
    assert product.stock == 3
    order = Order.objects.get(pk=body["id"])
    assert (order.fee, order.merchant_net) == (100, 1900)  # 5 % of 2000
    assert Payment.objects.get(pk=body["payment"]).status == "succeeded"
    assert _balance(wallet) == 3000
    merchant_wallet = wallet_id_for(user_id=product.merchant_id, role="merchant")
    assert _balance(merchant_wallet) == 1900
    entry = Entry.objects.get(reference=order.pk)
    assert entry.kind == "purchase"
    legs = {p.account_id: p.amount for p in entry.postings.all()}
    assert legs == {wallet: -2000, merchant_wallet: 1900, platform_account_id(AccountKind.PLATFORM_FEES, "usd"): 100}
    assert OrderEvent.objects.filter(order=order, type="order.paid").count() == 1


def test_wallet_purchase_when_quantity_absent_then_one(customer, customer_api, product):
    fund(customer, 5000)
    body = buy(customer_api, product.pk).json()
    assert (body["quantity"], body["amount"]) == (1, 1000)


def test_wallet_purchase_when_unlimited_stock_then_stock_stays_null(customer, customer_api, merchant):
    product = ProductFactory.create(merchant=merchant, stock=None, price=300)
    fund(customer, 1000)
    assert buy(customer_api, product.pk, quantity=3).status_code == 201
    product.refresh_from_db()
    assert product.stock is None


def test_wallet_purchase_when_not_enough_money_then_402_and_nothing_taken(customer, customer_api, product):
    wallet = fund(customer, 999)

    response = buy(customer_api, product.pk)

    assert_error(response, 402, "insufficient_funds")
    product.refresh_from_db()
    assert product.stock == 5
    assert _balance(wallet) == 999
    assert not Order.objects.exists()
    assert not Payment.objects.exists()


def test_wallet_purchase_when_no_wallet_yet_then_402(customer_api, product):
    assert_error(buy(customer_api, product.pk), 402, "insufficient_funds")


def test_wallet_purchase_when_out_of_stock_then_409(customer, customer_api, merchant):
    product = ProductFactory.create(merchant=merchant, stock=2)
    fund(customer, 100_000)

    assert_error(buy(customer_api, product.pk, quantity=3), 409, "out_of_stock", "quantity")
    assert buy(customer_api, product.pk, quantity=2).status_code == 201
    assert_error(buy(customer_api, product.pk), 409, "out_of_stock")
    product.refresh_from_db()
    assert product.stock == 0
    assert Order.objects.count() == 1


@pytest.mark.parametrize("change", ["inactive", "deleted", "unknown"])
def test_wallet_purchase_when_product_not_for_sale_then_404(customer, customer_api, product, change):
    fund(customer, 5000)
    product_id = product.pk
    if change == "inactive":
        Product.objects.filter(pk=product_id).update(is_active=False)
    elif change == "deleted":
        Product.objects.filter(pk=product_id).update(deleted_at=timezone.now())
    else:
        product_id = "prd_01ZZZZZZZZZZZZZZZZZZZZZZZZ"

    assert_error(buy(customer_api, product_id), 404, "not_found", "product")


def test_wallet_purchase_when_product_deactivated_after_a_purchase_then_404(customer, customer_api, product):
    """The remembered product terms never sell a product that left the catalog."""
    fund(customer, 5000)
    assert buy(customer_api, product.pk).status_code == 201
    Product.objects.filter(pk=product.pk).update(is_active=False)

    assert_error(buy(customer_api, product.pk), 404, "not_found", "product")


def test_wallet_purchase_when_price_changed_after_a_purchase_then_new_price(customer, customer_api, product):
    fund(customer, 5000)
    assert buy(customer_api, product.pk).json()["amount"] == 1000
    Product.objects.filter(pk=product.pk).update(price=1500, fulfillment="NEW-KEY")

    body = buy(customer_api, product.pk).json()

    assert (body["unit_price"], body["amount"], body["fulfillment"]) == (1500, 1500, "NEW-KEY")
    assert Account.objects.get(owner=customer).balance == 5000 - 1000 - 1500


def test_wallet_purchase_when_buying_own_product_then_400(customer, customer_api):
    own = ProductFactory.create(merchant=customer)
    fund(customer, 5000)
    assert_error(buy(customer_api, own.pk), 400, "validation_error", "product")


def test_wallet_purchase_when_merchant_then_403(merchant_api, product):
    assert_error(buy(merchant_api, product.pk), 403, "permission_denied")


def test_wallet_purchase_when_anonymous_then_401(api, product):
    assert_error(buy(api, product.pk), 401, "authentication_failed")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": 101}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"quantity": 1.0}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"payment_method": "bitcoin"}, "payment_method"),
        ({"payment_method": None}, "payment_method"),
    ],
)
def test_order_create_when_invalid_body_then_400(customer, customer_api, product, body, param):
    fund(customer, 500_000)
    assert_error(buy(customer_api, product.pk, **body), 400, "validation_error", param)
    assert not Order.objects.exists()


def test_order_create_when_product_missing_then_400(customer_api):
    response = customer_api.post("/api/v1/orders", {"payment_method": "wallet"}, format="json")
    assert_error(response, 400, "validation_error", "product")


def test_wallet_purchase_when_warm_then_few_queries(customer, product, django_capture_on_commit_callbacks):
    """The hot path. PostgreSQL: the user (JWT), BEGIN, one statement, COMMIT. Elsewhere: the user,
    BEGIN, 3 inserts, the stock UPDATE, 4 ledger statements, COMMIT."""
    client = client_for(customer)
    with django_capture_on_commit_callbacks(execute=True):  # as after real commits: ids are remembered
        fund(customer, 50_000)
        assert buy(client, product.pk).status_code == 201

    with CaptureQueriesContext(connection) as queries:
        assert buy(client, product.pk).status_code == 201

    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    transaction = ["WITH"]  # stock, wallets, payment, order, event, entry, postings: one round trip
    assert statements == [
        "SELECT",  # the user of the access token
        "SAVEPOINT",  # BEGIN outside the test's transaction
        *transaction,
        "RELEASE",  # COMMIT
    ], "\n".join(q["sql"][:100] for q in queries.captured_queries)


def test_wallet_purchase_when_other_buyers_then_each_pays_from_own_wallet(product):
    buyers = [CustomerFactory.create() for _ in range(3)]
    wallets = [fund(buyer, 1000) for buyer in buyers]
    for buyer in buyers:
        assert buy(client_for(buyer), product.pk).status_code == 201
    assert [_balance(w) for w in wallets] == [0, 0, 0]
    product.refresh_from_db()
    assert product.stock == 2


def test_wallet_purchase_when_idempotency_key_repeated_then_bought_once(customer, customer_api, product):
    wallet = fund(customer, 5000)
    body = {"product": product.pk, "payment_method": "wallet"}

    first = customer_api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    again = customer_api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert _balance(wallet) == 4000
    other = customer_api.post("/api/v1/orders", {**body, "quantity": 2}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    assert_error(other, 422, "idempotency_key_reused")
