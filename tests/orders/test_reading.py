from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order, OrderEvent
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.orders.conftest import buy, fund, reserve

pytestmark = pytest.mark.django_db


def test_order_list_when_buyer_then_own_orders_newest_first(customer, customer_api, product):
    fund(customer, 10_000)
    first = buy(customer_api, product.pk).json()["id"]
    second = buy(customer_api, product.pk).json()["id"]
    other = CustomerFactory.create()
    fund(other, 10_000)
    buy(client_for(other), product.pk)

    body = customer_api.get("/api/v1/orders").json()

    assert [o["id"] for o in body["results"]] == [second, first]
    assert body["results"][0]["fulfillment"] == "KEY-AAAA-BBBB"
    assert set(body) == {"results", "next", "previous"}


def test_order_list_when_limit_then_cursor_pages(customer, customer_api, product):
    fund(customer, 10_000)
    ids = [buy(customer_api, product.pk).json()["id"] for _ in range(3)]

    page = customer_api.get("/api/v1/orders?limit=2").json()
    assert [o["id"] for o in page["results"]] == ids[:0:-1]
    rest = customer_api.get(page["next"]).json()
    assert [o["id"] for o in rest["results"]] == [ids[0]]
    assert rest["next"] is None


def test_order_list_when_more_orders_then_same_query_count(customer, customer_api, merchant):
    fund(customer, 100_000)
    product = ProductFactory.create(merchant=merchant, stock=None)
    buy(customer_api, product.pk)
    with CaptureQueriesContext(connection) as one:
        customer_api.get("/api/v1/orders")
    for _ in range(4):
        buy(customer_api, product.pk)
    reserve(customer, product)
    with CaptureQueriesContext(connection) as many:
        assert len(customer_api.get("/api/v1/orders").json()["results"]) == 6
    assert len(many) == len(one)


def test_order_detail_when_buyer_then_order(customer, customer_api, product):
    fund(customer, 10_000)
    order_id = buy(customer_api, product.pk).json()["id"]

    body = customer_api.get(f"/api/v1/orders/{order_id}").json()

    assert body["id"] == order_id
    assert body["status"] == "paid"
    assert body["fulfillment"] == "KEY-AAAA-BBBB"
    assert set(body) >= {"id", "status", "product", "quantity", "unit_price", "amount", "currency", "payment",
                         "fulfillment", "client_secret", "created_at"}  # fmt: skip


def test_order_detail_when_other_users_order_then_404(customer, customer_api, product, merchant_api):
    fund(customer, 10_000)
    order_id = buy(customer_api, product.pk).json()["id"]
    other = client_for(CustomerFactory.create())

    assert_error(other.get(f"/api/v1/orders/{order_id}"), 404, "not_found")
    # Not even the merchant who sold it reads it here (that is merchant/sales).
    assert_error(merchant_api.get(f"/api/v1/orders/{order_id}"), 404, "not_found")


def test_order_detail_when_pending_then_no_fulfillment(customer, customer_api, product):
    order = reserve(customer, product)

    body = customer_api.get(f"/api/v1/orders/{order.pk}").json()

    assert body["status"] == "pending"
    assert body["fulfillment"] is None
    assert body["reserved_until"] is not None


def test_order_cancel_when_pending_then_canceled_and_stock_back(customer, customer_api, product):
    order = reserve(customer, product, quantity=2)
    product.refresh_from_db()
    assert product.stock == 3

    response = customer_api.post(f"/api/v1/orders/{order.pk}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "canceled"
    product.refresh_from_db()
    assert product.stock == 5
    assert OrderEvent.objects.filter(order=order, type="order.canceled").count() == 1
    # Twice: no longer pending.
    assert_error(customer_api.post(f"/api/v1/orders/{order.pk}/cancel"), 409, "invalid_status")
    product.refresh_from_db()
    assert product.stock == 5


def test_order_cancel_when_paid_then_409(customer, customer_api, product):
    fund(customer, 10_000)
    order_id = buy(customer_api, product.pk).json()["id"]

    assert_error(customer_api.post(f"/api/v1/orders/{order_id}/cancel"), 409, "invalid_status")
    assert Order.objects.get(pk=order_id).status == "paid"


def test_order_cancel_when_other_users_order_then_404(customer, product):
    order = reserve(customer, product)
    other = client_for(CustomerFactory.create())

    assert_error(other.post(f"/api/v1/orders/{order.pk}/cancel"), 404, "not_found")
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_merchant_sales_when_merchant_then_own_sales_with_fee_and_net(customer, customer_api, merchant, merchant_api):
    fund(customer, 10_000)
    mine = ProductFactory.create(merchant=merchant, price=2000)
    theirs = ProductFactory.create(merchant=MerchantFactory.create())
    sold = buy(customer_api, mine.pk).json()["id"]
    buy(customer_api, theirs.pk)

    body = merchant_api.get("/api/v1/merchant/sales").json()

    assert [s["id"] for s in body["results"]] == [sold]
    sale = body["results"][0]
    assert (sale["amount"], sale["fee"], sale["merchant_net"], sale["currency"]) == (2000, 100, 1900, "usd")
    assert sale["buyer"] == customer.pk
    assert "fulfillment" not in sale


def test_merchant_sales_when_status_filter_then_only_that_status(customer, customer_api, merchant_api, product):
    fund(customer, 10_000)
    paid = buy(customer_api, product.pk).json()["id"]
    pending = reserve(customer, product).pk

    def ids(query: str) -> list[str]:
        return [s["id"] for s in merchant_api.get(f"/api/v1/merchant/sales{query}").json()["results"]]

    assert ids("?status=paid") == [paid]
    assert ids("?status=pending") == [pending]
    assert ids("?status=refunded") == []
    assert ids("") == [pending, paid]


def test_merchant_sales_when_since_then_only_newer(customer, customer_api, merchant_api, product):
    fund(customer, 10_000)
    old = buy(customer_api, product.pk).json()["id"]
    Order.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(days=2))
    new = buy(customer_api, product.pk).json()["id"]

    def ids(since) -> list[str]:
        query = {"since": since.isoformat().replace("+00:00", "Z")}
        return [s["id"] for s in merchant_api.get("/api/v1/merchant/sales", query).json()["results"]]

    assert ids(timezone.now() - timedelta(days=1)) == [new]
    assert ids(timezone.now() - timedelta(days=3)) == [new, old]
    assert ids(timezone.now() + timedelta(minutes=5)) == []


@pytest.mark.parametrize(("query", "param"), [({"status": "lost"}, "status"), ({"since": "yesterday"}, "since")])
def test_merchant_sales_when_bad_filter_then_400(merchant_api, query, param):
    assert_error(merchant_api.get("/api/v1/merchant/sales", query), 400, "validation_error", param)


def test_merchant_sales_when_customer_then_403(customer_api):
    assert_error(customer_api.get("/api/v1/merchant/sales"), 403, "permission_denied")


def test_merchant_sales_when_more_sales_then_same_query_count(customer, customer_api, merchant_api, product):
    fund(customer, 100_000)
    buy(customer_api, product.pk)
    with CaptureQueriesContext(connection) as one:
        merchant_api.get("/api/v1/merchant/sales")
    for _ in range(3):
        buy(customer_api, product.pk)
    with CaptureQueriesContext(connection) as many:
        assert len(merchant_api.get("/api/v1/merchant/sales").json()["results"]) == 4
    assert len(many) == len(one)
