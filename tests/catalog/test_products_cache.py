"""The public catalog's cache: hits run no SQL, every change shows on the very next request."""

from __future__ import annotations

import pytest
from django.db import transaction

from catalog.cache import catalog_cache_bump, catalog_version
from catalog.locks import stock_return, stock_take
from catalog.models import Product
from tests.conftest import client_for
from tests.factories import MerchantFactory, ProductFactory

pytestmark = pytest.mark.django_db


def _stock_of(response, product_id: str):
    return {item["id"]: item["stock"] for item in response.json()["results"]}.get(product_id, "absent")


def test_products_list_when_cached_then_hit_runs_no_sql(api, django_assert_num_queries):
    ProductFactory.create_batch(3)
    first = api.get("/api/v1/products")

    with django_assert_num_queries(0):
        second = api.get("/api/v1/products")

    assert first["X-Cache"] == "miss" and second["X-Cache"] == "hit"
    assert second.content == first.content
    assert second["Content-Type"] == "application/json"


def test_product_detail_when_cached_then_hit_runs_no_sql(api, django_assert_num_queries):
    product = ProductFactory.create()
    first = api.get(f"/api/v1/products/{product.id}")

    with django_assert_num_queries(0):
        second = api.get(f"/api/v1/products/{product.id}")

    assert second["X-Cache"] == "hit" and second.json() == first.json()


def test_products_list_when_anonymous_and_logged_in_then_one_shared_body(api, customer_api):
    ProductFactory.create()
    anonymous = api.get("/api/v1/products")

    logged_in = customer_api.get("/api/v1/products")

    assert logged_in["X-Cache"] == "hit" and logged_in.content == anonymous.content


def test_products_list_when_query_differs_then_separate_entries(api):
    cheap = ProductFactory.create(price=100)
    dear = ProductFactory.create(price=9000)
    api.get("/api/v1/products", {"max_price": 100})

    response = api.get("/api/v1/products", {"min_price": 9000})

    assert response["X-Cache"] == "miss"
    assert [item["id"] for item in response.json()["results"]] == [dear.id]
    assert cheap.id not in response.content.decode()


@pytest.mark.parametrize("page_size", [1, 10, 60])
def test_products_list_when_any_page_size_then_one_query(api, django_assert_num_queries, page_size):
    merchant = MerchantFactory.create()
    ProductFactory.create_batch(page_size, merchant=merchant)

    with django_assert_num_queries(1):
        response = api.get("/api/v1/products", {"limit": page_size, "in_stock": "true", "search": "Product"})

    assert len(response.json()["results"]) == page_size


def test_products_list_when_product_updated_then_next_request_shows_it(
    merchant, api, django_capture_on_commit_callbacks
):
    product = ProductFactory.create(merchant=merchant, price=1000)
    api.get("/api/v1/products")
    api.get(f"/api/v1/products/{product.id}")

    with django_capture_on_commit_callbacks(execute=True):
        client_for(merchant).patch(f"/api/v1/products/{product.id}", {"price": 2500}, format="json")

    listed = api.get("/api/v1/products")
    detail = api.get(f"/api/v1/products/{product.id}")
    assert listed["X-Cache"] == "miss" and listed.json()["results"][0]["price"] == 2500
    assert detail["X-Cache"] == "miss" and detail.json()["price"] == 2500


def test_products_list_when_product_created_or_deleted_then_next_request_shows_it(
    merchant, api, django_capture_on_commit_callbacks
):
    merchant_api = client_for(merchant)
    api.get("/api/v1/products")

    with django_capture_on_commit_callbacks(execute=True):
        created = merchant_api.post(
            "/api/v1/products", {"name": "New", "price": 100, "fulfillment": "key"}, format="json"
        ).json()
    after_create = api.get("/api/v1/products")
    with django_capture_on_commit_callbacks(execute=True):
        merchant_api.delete(f"/api/v1/products/{created['id']}")
    after_delete = api.get("/api/v1/products")

    assert [item["id"] for item in after_create.json()["results"]] == [created["id"]]
    assert after_delete.json()["results"] == []


def test_products_list_when_sold_out_then_next_request_shows_no_stock(api, django_capture_on_commit_callbacks):
    """What an order does: take the last item inside its transaction, then commit."""
    product = ProductFactory.create(stock=1)
    assert _stock_of(api.get("/api/v1/products", {"in_stock": "true"}), product.id) == 1
    assert api.get(f"/api/v1/products/{product.id}").json()["stock"] == 1
    assert api.get(f"/api/v1/products/{product.id}")["X-Cache"] == "hit"

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        taken = stock_take(product.id, 1)

    assert taken is not None and taken.stock_left == 0
    assert _stock_of(api.get("/api/v1/products", {"in_stock": "true"}), product.id) == "absent"
    assert _stock_of(api.get("/api/v1/products"), product.id) == 0
    assert api.get(f"/api/v1/products/{product.id}").json()["stock"] == 0


def test_products_list_when_stock_returned_then_next_request_shows_it(api, django_capture_on_commit_callbacks):
    product = ProductFactory.create(stock=0)
    api.get("/api/v1/products", {"in_stock": "true"})

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        stock_return(product.id, 2)

    assert _stock_of(api.get("/api/v1/products", {"in_stock": "true"}), product.id) == 2


def test_stock_take_when_rolled_back_then_cache_kept(api, django_capture_on_commit_callbacks):
    product = ProductFactory.create(stock=5)
    api.get("/api/v1/products")
    version = catalog_version()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        stock_take(product.id, 1)
        raise RuntimeError("the order failed")

    assert callbacks == []
    assert catalog_version() == version
    assert api.get("/api/v1/products")["X-Cache"] == "hit"
    product.refresh_from_db()
    assert product.stock == 5


def test_stock_take_when_unlimited_stock_then_cache_kept(api, django_capture_on_commit_callbacks):
    product = ProductFactory.create(stock=None)
    api.get("/api/v1/products")
    version = catalog_version()

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        taken = stock_take(product.id, 3)
        stock_return(product.id, 3)

    assert taken is not None and taken.stock_left is None
    assert callbacks == []
    assert catalog_version() == version
    assert api.get("/api/v1/products")["X-Cache"] == "hit"


def test_stock_take_when_not_enough_then_none_and_stock_unchanged():
    product = ProductFactory.create(stock=2)

    with transaction.atomic():
        assert stock_take(product.id, 3) is None

    product.refresh_from_db()
    assert product.stock == 2


def test_products_list_when_error_response_then_not_cached(api):
    first = api.get("/api/v1/products", {"min_price": "x"})
    second = api.get("/api/v1/products", {"min_price": "x"})

    assert first.status_code == second.status_code == 400
    assert first.json()["error"]["request_id"] != second.json()["error"]["request_id"]
    assert "X-Cache" not in second


def test_products_list_when_another_process_bumps_then_local_copy_not_served(api):
    """Each process keeps local copies of bodies; a bump by any process retires them at once."""
    product = ProductFactory.create(price=1000)
    api.get("/api/v1/products")
    Product.objects.filter(pk=product.id).update(price=3000)  # as another process would, then:

    catalog_cache_bump()

    response = api.get("/api/v1/products")
    assert response["X-Cache"] == "miss" and response.json()["results"][0]["price"] == 3000


def test_products_list_when_cache_down_then_served_from_database(api, monkeypatch):
    product = ProductFactory.create()

    def unreachable(*args, **kwargs):
        raise ConnectionError("cache is down")

    monkeypatch.setattr("catalog.cache._read_version", unreachable)
    monkeypatch.setattr("django.core.cache.cache.incr", unreachable)
    monkeypatch.setattr("django.core.cache.cache.add", unreachable)

    listed = api.get("/api/v1/products")
    catalog_cache_bump()  # logged, never raised into the writer's request

    assert listed.status_code == 200 and listed.json()["results"][0]["id"] == product.id
    assert "X-Cache" not in listed


def test_body_when_another_process_stored_it_then_kept_locally_only_as_long_as_the_shared_copy(api, settings):
    """A process that reads a body another one stored keeps its copy until the shared entry expires (the
    entry carries its expiry), not for a fixed few seconds nor beyond the entry."""
    import time

    from django.core.cache import cache

    from catalog.cache import _shared_body, local_bodies

    ProductFactory.create_batch(2)
    local_bodies.clear()
    built = api.get("/api/v1/products")
    assert built["X-Cache"] == "miss"
    (key,) = list(local_bodies.bodies)
    expires_at, body = cache.get(key)
    assert body == built.content
    assert abs(expires_at - (time.time() + settings.CATALOG_CACHE_TTL)) < 5

    assert _shared_body((time.time() + 30, b"{}"))[0] == b"{}"
    assert 29 < _shared_body((time.time() + 30, b"{}"))[1] <= 30
    assert _shared_body((time.time() - 1, b"{}")) == (None, 0.0)  # the shared copy is gone: a miss
    assert _shared_body(b"{}") == (b"{}", 5)  # an entry written before expiries were stored
    assert _shared_body(None) == (None, 0.0)

    local_bodies.clear()  # as in another process: only the shared copy
    again = api.get("/api/v1/products")
    assert again["X-Cache"] == "hit" and again.content == built.content
    kept_until = local_bodies.bodies[key][0]
    assert kept_until - time.monotonic() > settings.CATALOG_CACHE_TTL - 5  # not the old 5 s
