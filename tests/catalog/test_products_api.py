"""The products API: public catalog, merchants' writes, every permission case."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.conftest import assert_error, client_for
from tests.factories import MerchantFactory, ProductFactory

pytestmark = pytest.mark.django_db

PUBLIC_FIELDS = {"id", "merchant", "name", "description", "price", "currency", "stock", "is_active", "created_at"}
VALID = {"name": "E-book", "description": "A good read.", "price": 1050, "stock": 3, "fulfillment": "https://x/dl/1"}


def _ids(response) -> list[str]:
    return [item["id"] for item in response.json()["results"]]


# --- public reads -------------------------------------------------------------------------------


def test_products_list_when_anonymous_then_only_public_products_newest_first(api):
    older = ProductFactory.create()
    newer = ProductFactory.create()
    ProductFactory.create(is_active=False)
    deleted = ProductFactory.create()
    deleted.deleted_at = deleted.created_at
    deleted.save()

    response = api.get("/api/v1/products")

    assert response.status_code == 200
    body = response.json()
    assert _ids(response) == [newer.id, older.id]
    assert body["next"] is None and body["previous"] is None
    item = body["results"][0]
    assert set(item) == PUBLIC_FIELDS
    assert item["merchant"] == newer.merchant_id
    assert item["price"] == 1000 and item["currency"] == settings.PLATFORM_CURRENCY
    assert "fulfillment" not in response.content.decode()


def test_product_detail_when_public_then_public_fields_only(api):
    product = ProductFactory.create(stock=None)

    response = api.get(f"/api/v1/products/{product.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert body["id"] == product.id and body["stock"] is None and body["is_active"] is True
    assert body["created_at"].endswith("Z")


def test_product_detail_when_owner_reads_publicly_then_no_fulfillment(merchant, merchant_api):
    product = ProductFactory.create(merchant=merchant)

    response = merchant_api.get(f"/api/v1/products/{product.id}")

    assert response.status_code == 200
    assert set(response.json()) == PUBLIC_FIELDS


@pytest.mark.parametrize("state", ["inactive", "deleted", "unknown"])
def test_product_detail_when_not_public_then_404(api, state):
    product = ProductFactory.create(is_active=state != "inactive")
    if state == "deleted":
        product.deleted_at = product.created_at
        product.save()
    product_id = product.id if state != "unknown" else "prd_00000000000000000000000000"

    assert_error(api.get(f"/api/v1/products/{product_id}"), 404, "not_found")


def test_products_list_when_token_invalid_then_public_body_anyway(api):
    ProductFactory.create()
    anonymous = api.get("/api/v1/products")
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = api.get("/api/v1/products")

    assert response.status_code == 200
    assert response.json() == anonymous.json()


# --- filters and pagination ---------------------------------------------------------------------


def test_products_list_when_filtered_by_merchant_then_only_theirs(api):
    mine = ProductFactory.create()
    ProductFactory.create()

    response = api.get("/api/v1/products", {"merchant": mine.merchant_id})

    assert _ids(response) == [mine.id]


def test_products_list_when_searching_then_matches_name_or_description_case_insensitively(api):
    by_name = ProductFactory.create(name="Jazz Loops Vol. 1")
    by_description = ProductFactory.create(description="Smooth JAZZ samples")
    ProductFactory.create(name="Rock", description="Guitars")

    response = api.get("/api/v1/products", {"search": "jazz"})

    assert set(_ids(response)) == {by_name.id, by_description.id}


def test_products_list_when_price_bounds_then_inclusive_range(api):
    cheap = ProductFactory.create(price=500)
    middle = ProductFactory.create(price=1000)
    ProductFactory.create(price=1500)

    assert set(_ids(api.get("/api/v1/products", {"min_price": 1000, "max_price": 1000}))) == {middle.id}
    assert set(_ids(api.get("/api/v1/products", {"max_price": 1000}))) == {cheap.id, middle.id}


def test_products_list_when_in_stock_then_unlimited_and_positive_stock_only(api):
    unlimited = ProductFactory.create(stock=None)
    some = ProductFactory.create(stock=1)
    sold_out = ProductFactory.create(stock=0)

    assert set(_ids(api.get("/api/v1/products", {"in_stock": "true"}))) == {unlimited.id, some.id}
    assert _ids(api.get("/api/v1/products", {"in_stock": "false"})) == [sold_out.id]


@pytest.mark.parametrize("param,value", [("min_price", "ten"), ("max_price", "10.5"), ("min_price", "-1")])
def test_products_list_when_price_filter_invalid_then_400(api, param, value):
    assert_error(api.get("/api/v1/products", {param: value}), 400, "validation_error", param)


def test_products_list_when_paginated_then_cursor_walks_every_product_once(api):
    products = [ProductFactory.create() for _ in range(5)]

    first = api.get("/api/v1/products", {"limit": 2})
    second = api.get(first.json()["next"])
    third = api.get(second.json()["next"])

    assert len(first.json()["results"]) == 2
    assert third.json()["next"] is None
    seen = _ids(first) + _ids(second) + _ids(third)
    assert seen == [p.id for p in reversed(products)]


def test_products_list_when_limit_above_100_then_capped(api):
    merchant = MerchantFactory.create()
    ProductFactory.create_batch(101, merchant=merchant)

    response = api.get("/api/v1/products", {"limit": 500})

    assert len(response.json()["results"]) == 100
    assert response.json()["next"] is not None


# --- create -------------------------------------------------------------------------------------


def test_product_create_when_merchant_then_201_with_fulfillment_and_public(merchant, merchant_api, api):
    response = merchant_api.post("/api/v1/products", VALID, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("prd_")
    assert body["merchant"] == merchant.id
    assert body["fulfillment"] == VALID["fulfillment"]
    assert body["deleted_at"] is None
    assert body["currency"] == settings.PLATFORM_CURRENCY and body["price"] == 1050 and body["stock"] == 3
    assert body["is_active"] is True
    public = api.get(f"/api/v1/products/{body['id']}")
    assert public.status_code == 200 and "fulfillment" not in public.json()


def test_product_create_when_stock_absent_or_null_then_unlimited(merchant_api):
    absent = {key: value for key, value in VALID.items() if key != "stock"}

    assert merchant_api.post("/api/v1/products", absent, format="json").json()["stock"] is None
    assert merchant_api.post("/api/v1/products", {**VALID, "stock": None}, format="json").json()["stock"] is None


def test_product_create_when_inactive_then_hidden_from_public(merchant_api, api):
    created = merchant_api.post("/api/v1/products", {**VALID, "is_active": False}, format="json").json()

    assert created["is_active"] is False
    assert_error(api.get(f"/api/v1/products/{created['id']}"), 404, "not_found")


def test_product_create_when_anonymous_then_401(api):
    assert_error(api.post("/api/v1/products", VALID, format="json"), 401, "authentication_failed")


def test_product_create_when_customer_then_403(customer_api):
    assert_error(customer_api.post("/api/v1/products", VALID, format="json"), 403, "permission_denied")


def test_product_create_when_staff_then_403(staff_api):
    assert_error(staff_api.post("/api/v1/products", VALID, format="json"), 403, "permission_denied")


@pytest.mark.parametrize(
    "changes,param",
    [
        ({"price": 0}, "price"),
        ({"price": -100}, "price"),
        ({"price": 10.5}, "price"),
        ({"price": 1000.0}, "price"),
        ({"price": "1000"}, "price"),
        ({"price": True}, "price"),
        ({"price": None}, "price"),
        ({"price": 100_000_001}, "price"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"description": "x" * 5001}, "description"),
        ({"stock": -1}, "stock"),
        ({"stock": "3"}, "stock"),
        ({"stock": 1.5}, "stock"),
        ({"stock": True}, "stock"),
        ({"fulfillment": ""}, "fulfillment"),
        ({"fulfillment": "   "}, "fulfillment"),
        ({"fulfillment": "x" * 5001}, "fulfillment"),
    ],
)
def test_product_create_when_invalid_then_400_with_param(merchant_api, changes, param):
    response = merchant_api.post("/api/v1/products", {**VALID, **changes}, format="json")

    assert_error(response, 400, "validation_error", param)


@pytest.mark.parametrize("missing", ["name", "price", "fulfillment"])
def test_product_create_when_required_field_missing_then_400(merchant_api, missing):
    body = {key: value for key, value in VALID.items() if key != missing}

    assert_error(merchant_api.post("/api/v1/products", body, format="json"), 400, "validation_error", missing)


def test_product_create_when_at_limits_then_accepted(merchant_api):
    body = {"name": "x" * 200, "description": "d" * 5000, "price": 100_000_000, "stock": 0, "fulfillment": "f" * 5000}

    response = merchant_api.post("/api/v1/products", body, format="json")

    assert response.status_code == 201, response.content


# --- update -------------------------------------------------------------------------------------


def test_product_update_when_owner_then_only_sent_fields_change(merchant, merchant_api, api):
    product = ProductFactory.create(merchant=merchant, price=1000, stock=5)

    response = merchant_api.patch(f"/api/v1/products/{product.id}", {"price": 1500, "stock": None}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["price"] == 1500 and body["stock"] is None
    assert body["name"] == product.name and body["fulfillment"] == product.fulfillment
    product.refresh_from_db()
    assert product.price == 1500 and product.stock is None


def test_product_update_when_deactivated_then_hidden_and_owner_can_reactivate(merchant, merchant_api, api):
    product = ProductFactory.create(merchant=merchant)

    merchant_api.patch(f"/api/v1/products/{product.id}", {"is_active": False}, format="json")
    hidden = api.get(f"/api/v1/products/{product.id}")
    merchant_api.patch(f"/api/v1/products/{product.id}", {"is_active": True}, format="json")

    assert_error(hidden, 404, "not_found")
    assert api.get(f"/api/v1/products/{product.id}").status_code == 200


@pytest.mark.parametrize("changes,param", [({"price": 0}, "price"), ({"name": ""}, "name"), ({"stock": -3}, "stock")])
def test_product_update_when_invalid_then_400_and_unchanged(merchant, merchant_api, changes, param):
    product = ProductFactory.create(merchant=merchant)

    assert_error(
        merchant_api.patch(f"/api/v1/products/{product.id}", changes, format="json"), 400, "validation_error", param
    )
    product.refresh_from_db()
    assert (product.price, product.stock) == (1000, 10)


def test_product_update_when_other_merchant_then_404(merchant_api):
    product = ProductFactory.create()

    assert_error(merchant_api.patch(f"/api/v1/products/{product.id}", {"price": 1}, format="json"), 404, "not_found")
    product.refresh_from_db()
    assert product.price == 1000


def test_product_update_when_customer_then_403(customer_api):
    product = ProductFactory.create()

    response = customer_api.patch(f"/api/v1/products/{product.id}", {"price": 1}, format="json")

    assert_error(response, 403, "permission_denied")


def test_product_update_when_staff_then_403(staff_api):
    product = ProductFactory.create()

    assert_error(
        staff_api.patch(f"/api/v1/products/{product.id}", {"price": 1}, format="json"), 403, "permission_denied"
    )


def test_product_update_when_anonymous_then_401(api):
    product = ProductFactory.create()

    assert_error(api.patch(f"/api/v1/products/{product.id}", {"price": 1}, format="json"), 401, "authentication_failed")


def test_product_update_when_deleted_then_404(merchant, merchant_api):
    product = ProductFactory.create(merchant=merchant)
    merchant_api.delete(f"/api/v1/products/{product.id}")

    assert_error(merchant_api.patch(f"/api/v1/products/{product.id}", {"price": 5}, format="json"), 404, "not_found")


# --- delete -------------------------------------------------------------------------------------


def test_product_delete_when_owner_then_204_soft_and_listed_for_owner(merchant, merchant_api, api):
    product = ProductFactory.create(merchant=merchant)

    response = merchant_api.delete(f"/api/v1/products/{product.id}")

    assert response.status_code == 204
    assert_error(api.get(f"/api/v1/products/{product.id}"), 404, "not_found")
    assert product.id not in _ids(api.get("/api/v1/products"))
    product.refresh_from_db()
    assert product.deleted_at is not None
    own = merchant_api.get("/api/v1/merchant/products").json()["results"]
    assert [(item["id"], item["deleted_at"] is not None) for item in own] == [(product.id, True)]
    assert_error(merchant_api.delete(f"/api/v1/products/{product.id}"), 404, "not_found")


def test_product_delete_when_other_merchant_then_404_and_kept(merchant_api, api):
    product = ProductFactory.create()

    assert_error(merchant_api.delete(f"/api/v1/products/{product.id}"), 404, "not_found")
    assert api.get(f"/api/v1/products/{product.id}").status_code == 200


@pytest.mark.parametrize(
    "who,status,code", [("customer", 403, "permission_denied"), ("staff", 403, "permission_denied")]
)
def test_product_delete_when_not_a_merchant_then_403(request, who, status, code):
    product = ProductFactory.create()
    client = request.getfixturevalue(f"{who}_api")

    assert_error(client.delete(f"/api/v1/products/{product.id}"), status, code)
    product.refresh_from_db()
    assert product.deleted_at is None


def test_product_delete_when_anonymous_then_401(api):
    product = ProductFactory.create()

    assert_error(api.delete(f"/api/v1/products/{product.id}"), 401, "authentication_failed")


# --- the merchant's own list --------------------------------------------------------------------


def test_merchant_products_when_merchant_then_own_products_with_fulfillment(merchant, merchant_api):
    inactive = ProductFactory.create(merchant=merchant, is_active=False)
    live = ProductFactory.create(merchant=merchant)
    ProductFactory.create()

    response = merchant_api.get("/api/v1/merchant/products")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["id"] for item in results] == [live.id, inactive.id]
    assert results[0]["fulfillment"] == live.fulfillment
    assert results[0]["deleted_at"] is None and results[1]["is_active"] is False


def test_merchant_product_detail_when_owner_then_fulfillment_even_if_deleted(merchant, merchant_api):
    product = ProductFactory.create(merchant=merchant)
    merchant_api.delete(f"/api/v1/products/{product.id}")

    response = merchant_api.get(f"/api/v1/merchant/products/{product.id}")

    assert response.status_code == 200
    assert response.json()["fulfillment"] == product.fulfillment and response.json()["deleted_at"]


def test_merchant_product_detail_when_other_merchant_then_404(merchant_api):
    assert_error(merchant_api.get(f"/api/v1/merchant/products/{ProductFactory.create().id}"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/merchant/products", "/api/v1/merchant/products/prd_x"])
def test_merchant_products_when_customer_or_staff_then_403(customer_api, staff_api, path):
    assert_error(customer_api.get(path), 403, "permission_denied")
    assert_error(staff_api.get(path), 403, "permission_denied")


def test_merchant_products_when_anonymous_then_401(api):
    assert_error(api.get("/api/v1/merchant/products"), 401, "authentication_failed")


def test_merchant_products_when_other_merchant_has_products_then_not_listed(merchant):
    ProductFactory.create(merchant=merchant)
    other = client_for(MerchantFactory.create())

    assert other.get("/api/v1/merchant/products").json()["results"] == []


@pytest.mark.parametrize("stock", [None, 0, 7])
def test_product_bodies_when_built_from_rows_then_identical_to_documented_serializer(api, stock):
    """List and detail are built from plain rows; the schema documents ProductSerializer: they must agree."""
    import json

    from catalog.serializers import ProductSerializer

    product = ProductFactory.create(name='Café — 日本語 "quoted"', description="line\nbreak", stock=stock)
    documented = json.loads(json.dumps(ProductSerializer(product).data))

    detail = api.get(f"/api/v1/products/{product.id}")
    listed = api.get("/api/v1/products")

    assert detail.json() == documented
    assert listed.json()["results"] == [documented]
    assert detail.content.decode().startswith('{"id":"prd_')
