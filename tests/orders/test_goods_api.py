"""Digital goods through the REST API: delivery kinds, code pools, licence keys, downloads, the library."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import CodeStatus, ProductCode
from catalog.services import product_codes_add, product_create, product_file_put
from orders.models import Goods, GoodsStatus
from orders.services.goods import goods_revoke
from tests.conftest import client_for
from tests.factories import CustomerFactory, MerchantFactory
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _product(merchant: Any, delivery: str, **extra: Any) -> Any:
    fulfillment = "Thanks! Here is the text." if delivery == "text" else ""
    return product_create(
        merchant=merchant, name=f"A {delivery}", price=1000, delivery=delivery, fulfillment=fulfillment, **extra
    )


def test_create_when_codes_product_with_stock_then_400_param_stock(merchant_api: APIClient) -> None:
    body = {"name": "Gift card", "price": 500, "delivery": "codes", "stock": 3}
    response = merchant_api.post("/api/v1/products", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stock"


def test_create_when_text_product_without_fulfillment_then_400(merchant_api: APIClient) -> None:
    response = merchant_api.post("/api/v1/products", {"name": "T", "price": 500}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "fulfillment"


def test_create_when_codes_product_then_stock_0_and_the_owner_sees_delivery(merchant_api: APIClient) -> None:
    response = merchant_api.post(
        "/api/v1/products", {"name": "Gift card", "price": 500, "delivery": "codes"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["stock"], response.json()["delivery"]) == (0, "codes")


def test_codes_when_uploaded_then_stock_counts_them_and_list_shows_status(
    merchant: Any, merchant_api: APIClient
) -> None:
    product = _product(merchant, "codes")
    response = merchant_api.post(
        f"/api/v1/products/{product.pk}/codes", {"codes": ["A-1", "A-2", "A-3"]}, format="json"
    )
    assert response.status_code == 201
    assert response.json() == {"added": 3, "stock": 3}

    listed = merchant_api.get(f"/api/v1/products/{product.pk}/codes").json()["results"]
    assert sorted((c["code"], c["status"], c["order"]) for c in listed) == [
        ("A-1", "available", None),
        ("A-2", "available", None),
        ("A-3", "available", None),
    ]


def test_codes_when_one_is_a_duplicate_then_400_and_nothing_added(merchant: Any, merchant_api: APIClient) -> None:
    product = _product(merchant, "codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["X"])
    for codes in (["Y", "X"], ["Z", "Z"], [], ["bad\ncode"]):
        response = merchant_api.post(f"/api/v1/products/{product.pk}/codes", {"codes": codes}, format="json")
        assert response.status_code == 400, codes
        assert response.json()["error"]["param"] == "codes"
    assert list(ProductCode.objects.filter(product=product).values_list("code", flat=True)) == ["X"]
    product.refresh_from_db()
    assert product.stock == 1


def test_codes_when_another_merchants_product_then_404(merchant: Any) -> None:
    product = _product(merchant, "codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["SECRET-1"])
    other = client_for(MerchantFactory.create())
    assert other.get(f"/api/v1/products/{product.pk}/codes").status_code == 404
    assert other.post(f"/api/v1/products/{product.pk}/codes", {"codes": ["N"]}, format="json").status_code == 404
    assert client_for(CustomerFactory.create()).get(f"/api/v1/products/{product.pk}/codes").status_code == 403


def test_buy_when_codes_then_each_unit_gets_its_own_code_and_the_pool_shows_the_order(
    merchant: Any, merchant_api: APIClient, customer: Any, customer_api: APIClient
) -> None:
    product = _product(merchant, "codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["C1", "C2", "C3"])
    fund(customer, 10_000)

    response = buy(customer_api, product.pk, quantity=2)

    assert response.status_code == 201, response.json()
    order = response.json()
    assert [(g["type"], g["value"], g["status"]) for g in order["goods"]] == [
        ("code", "C1", "active"),
        ("code", "C2", "active"),
    ]
    assert customer_api.get(f"/api/v1/orders/{order['id']}").json()["goods"] == order["goods"]
    listed = {
        c["code"]: (c["status"], c["order"])
        for c in merchant_api.get(f"/api/v1/products/{product.pk}/codes").json()["results"]
    }
    assert listed == {"C1": ("sold", order["id"]), "C2": ("sold", order["id"]), "C3": ("available", None)}
    product.refresh_from_db()
    assert product.stock == 1
    assert buy(customer_api, product.pk, quantity=2).json()["error"]["code"] == "out_of_stock"


def test_buy_when_license_key_then_a_grouped_key_the_check_finds(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = _product(merchant, "license_key")
    fund(customer, 10_000)

    goods = buy(customer_api, product.pk, quantity=2).json()["goods"]

    keys = [g["value"] for g in goods]
    assert len(set(keys)) == 2
    for key in keys:
        groups = key.split("-")
        assert [len(g) for g in groups] == [5] * 6  # 30 base32 characters: 150 random bits
    anonymous = APIClient()
    check = anonymous.get(f"/api/v1/licenses/{keys[0].lower()}")
    assert check.status_code == 200
    assert check.json() == {"valid": True, "status": "active", "product": product.pk}
    assert anonymous.get("/api/v1/licenses/AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF").status_code == 404


def test_license_check_when_throttled_then_429(merchant: Any, settings: Any) -> None:
    settings.THROTTLE_SCALE = 1
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "licenses": "2/min"},
    }
    from rest_framework.settings import api_settings

    api_settings.reload()
    from orders.goods_views import LicenseCheckThrottle

    LicenseCheckThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]  # DRF's stubs type the rates narrower than the setting
    anonymous = APIClient()
    statuses = [anonymous.get("/api/v1/licenses/NOPE").status_code for _ in range(3)]
    assert statuses == [404, 404, 429]


def test_buy_when_text_then_every_buyer_gets_the_same_text(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = _product(merchant, "text")
    fund(customer, 10_000)
    order = buy(customer_api, product.pk).json()
    assert order["fulfillment"] == "Thanks! Here is the text."
    assert [(g["type"], g["value"]) for g in order["goods"]] == [("text", "Thanks! Here is the text.")]


def _file_product(merchant: Any, content: bytes = b"hello file", **extra: Any) -> Any:
    product = _product(merchant, "file", **extra)
    product_file_put(
        merchant=merchant, product_id=product.pk, upload=SimpleUploadedFile("guide.pdf", content, "application/pdf")
    )
    return product


def _download(url: str) -> Any:
    return APIClient().get(url.split("127.0.0.1:8000", 1)[-1])


def test_file_when_uploaded_then_name_size_sha256_and_only_for_file_products(
    merchant: Any, merchant_api: APIClient
) -> None:
    product = _product(merchant, "file")
    upload = SimpleUploadedFile("guide.pdf", b"%PDF-1.4 tiny", "application/pdf")
    response = merchant_api.put(f"/api/v1/products/{product.pk}/file", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.json()
    import hashlib

    assert response.json()["name"] == "guide.pdf"
    assert response.json()["size"] == 13
    assert response.json()["sha256"] == hashlib.sha256(b"%PDF-1.4 tiny").hexdigest()

    text = _product(merchant, "text")
    upload = SimpleUploadedFile("x.txt", b"x")
    assert merchant_api.put(f"/api/v1/products/{text.pk}/file", {"file": upload}, format="multipart").status_code == 400
    other = client_for(MerchantFactory.create())
    upload = SimpleUploadedFile("x.txt", b"x")
    assert other.put(f"/api/v1/products/{product.pk}/file", {"file": upload}, format="multipart").status_code == 404


def test_download_when_bought_then_the_link_serves_the_file_until_its_limit(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = _file_product(merchant, download_limit=2)
    fund(customer, 10_000)
    goods = buy(customer_api, product.pk).json()["goods"][0]
    assert (goods["type"], goods["downloads_left"]) == ("download", 2)

    first = _download(goods["url"])
    assert first.status_code == 200
    assert b"".join(first.streaming_content) == b"hello file"
    assert 'attachment; filename="guide.pdf"' in first["Content-Disposition"]
    assert _download(goods["url"]).status_code == 200
    third = _download(goods["url"])
    assert third.status_code == 410
    assert third.json()["error"]["code"] == "download_limit_reached"
    assert customer_api.post(f"/api/v1/library/{goods['id']}/link").json()["error"]["code"] == "download_limit_reached"


def test_download_when_expired_then_410_and_a_fresh_link_works(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = _file_product(merchant)
    fund(customer, 10_000)
    goods = buy(customer_api, product.pk).json()["goods"][0]
    Goods.objects.filter(pk=goods["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = _download(goods["url"])
    assert (expired.status_code, expired.json()["error"]["code"]) == (410, "download_expired")

    fresh = customer_api.post(f"/api/v1/library/{goods['id']}/link")
    assert fresh.status_code == 201
    assert fresh.json()["url"] != goods["url"]
    assert _download(fresh.json()["url"]).status_code == 200
    assert _download(goods["url"]).status_code == 404  # the old link stopped


def test_download_when_revoked_then_410_goods_revoked(merchant: Any, customer: Any, customer_api: APIClient) -> None:
    product = _file_product(merchant)
    fund(customer, 10_000)
    order = buy(customer_api, product.pk).json()
    goods_revoke(order=Goods.objects.get(pk=order["goods"][0]["id"]).order)

    revoked = _download(order["goods"][0]["url"])
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (410, "goods_revoked")
    link = customer_api.post(f"/api/v1/library/{order['goods'][0]['id']}/link")
    assert (link.status_code, link.json()["error"]["code"]) == (410, "goods_revoked")


def test_library_when_another_buyer_asks_then_404_and_never_the_file(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = _file_product(merchant)
    fund(customer, 10_000)
    goods = buy(customer_api, product.pk).json()["goods"][0]
    stranger = client_for(CustomerFactory.create())

    assert stranger.post(f"/api/v1/library/{goods['id']}/link").status_code == 404
    assert stranger.get("/api/v1/library").json()["results"] == []
    assert APIClient().get("/api/v1/downloads/" + "x" * 43).status_code == 404
    assert Goods.objects.get(pk=goods["id"]).downloads_left == 5  # nothing counted


def test_library_when_buyer_owns_several_kinds_then_newest_first_with_order_and_product(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    text, key = _product(merchant, "text"), _product(merchant, "license_key")
    fund(customer, 10_000)
    first = buy(customer_api, text.pk).json()
    second = buy(customer_api, key.pk).json()

    items = customer_api.get("/api/v1/library").json()["results"]

    assert [(i["order"], i["product"], i["type"]) for i in items] == [
        (second["id"], key.pk, "license_key"),
        (first["id"], text.pk, "text"),
    ]


def test_goods_when_revoked_then_codes_revoked_and_never_sold_again(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = _product(merchant, "codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["ONLY"])
    fund(customer, 10_000)
    order = buy(customer_api, product.pk).json()
    goods_revoke(order=Goods.objects.get(pk=order["goods"][0]["id"]).order)

    assert ProductCode.objects.get(code="ONLY").status == CodeStatus.REVOKED
    assert Goods.objects.get(pk=order["goods"][0]["id"]).status == GoodsStatus.REVOKED
    assert buy(customer_api, product.pk).json()["error"]["code"] == "out_of_stock"
    again = client_for(merchant).post(f"/api/v1/products/{product.pk}/codes", {"codes": ["ONLY"]}, format="json")
    assert again.status_code == 400


def test_card_reservation_when_it_closes_unpaid_then_its_codes_go_back_to_the_pool(
    merchant: Any, customer: Any
) -> None:
    from orders.models import OrderStatus
    from orders.services.cancel import order_close_pending
    from tests.orders.conftest import reserve

    product = _product(merchant, "codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["R-1", "R-2"])

    order = reserve(customer, product)
    held = ProductCode.objects.get(order_id=order.pk)
    assert (held.code, held.status) == ("R-1", CodeStatus.SOLD)
    product.refresh_from_db()
    assert product.stock == 1

    order_close_pending(order_id=order.pk, to=OrderStatus.CANCELED)

    held.refresh_from_db()
    product.refresh_from_db()
    assert (held.status, held.order_id, product.stock) == (CodeStatus.AVAILABLE, "", 2)
    assert not Goods.objects.filter(order_id=order.pk).exists()
