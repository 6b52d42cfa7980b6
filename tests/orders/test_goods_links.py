"""A download's live link in every read (order, library): one per item, shown while it works, with the place to
ask for a fresh one; the database keeps only the link token's sha256."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.services import product_create, product_file_put
from orders.models import Goods
from orders.services.goods import goods_revoke
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _get(url: str) -> Any:
    """GET one of the platform's own absolute URLs (``PUBLIC_URL`` …) with an anonymous client."""
    return APIClient().get(urlsplit(url).path)


def _bought_file(merchant: Any, customer: Any, customer_api: APIClient, **extra: Any) -> dict[str, Any]:
    product = product_create(merchant=merchant, name="Guide", price=1000, delivery="file", **extra)
    product_file_put(merchant=merchant, product_id=product.pk, upload=SimpleUploadedFile("guide.txt", b"guide"))
    fund(customer, 10_000)
    response = buy(customer_api, product.pk)
    assert response.status_code == 201, response.json()
    order: dict[str, Any] = response.json()
    return order


def _library_item(customer_api: APIClient, goods_id: str) -> dict[str, Any]:
    items = customer_api.get("/api/v1/library").json()["results"]
    item: dict[str, Any] = next(i for i in items if i["id"] == goods_id)
    return item


def test_library_when_a_download_is_live_then_it_shows_the_working_link_and_where_to_refresh(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    order = _bought_file(merchant, customer, customer_api)
    bought = order["goods"][0]

    item = _library_item(customer_api, bought["id"])
    again = customer_api.get(f"/api/v1/orders/{order['id']}").json()["goods"][0]

    assert item["url"] == again["url"] == bought["url"] is not None
    assert item["refresh"] == again["refresh"] == f"http://127.0.0.1:8000/api/v1/library/{bought['id']}/link"
    download = _get(item["url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"guide"
    assert _library_item(customer_api, bought["id"])["downloads_left"] == 4


def test_library_when_the_link_is_refreshed_then_it_shows_the_new_link_and_the_old_one_stops(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    order = _bought_file(merchant, customer, customer_api)
    old = order["goods"][0]

    fresh = customer_api.post(urlsplit(old["refresh"]).path)

    assert fresh.status_code == 201
    item = _library_item(customer_api, old["id"])
    assert item["url"] == fresh.json()["url"] != old["url"]
    assert _get(old["url"]).status_code == 404
    assert _get(item["url"]).status_code == 200


def test_library_when_the_link_expired_then_no_url_but_a_refresh_that_gives_a_working_one(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    order = _bought_file(merchant, customer, customer_api)
    goods_id = order["goods"][0]["id"]
    Goods.objects.filter(pk=goods_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    item = _library_item(customer_api, goods_id)
    assert (item["url"], item["status"], item["downloads_left"]) == (None, "active", 5)
    assert item["refresh"] is not None

    fresh = customer_api.post(urlsplit(item["refresh"]).path).json()
    assert _library_item(customer_api, goods_id)["url"] == fresh["url"]
    assert _get(fresh["url"]).status_code == 200


def test_library_when_the_downloads_are_used_up_then_neither_url_nor_refresh(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    order = _bought_file(merchant, customer, customer_api, download_limit=1)
    link = order["goods"][0]["url"]
    assert _get(link).status_code == 200

    item = _library_item(customer_api, order["goods"][0]["id"])

    assert (item["url"], item["refresh"], item["downloads_left"]) == (None, None, 0)
    assert _get(link).json()["error"]["code"] == "download_limit_reached"


def test_library_when_revoked_then_neither_url_nor_refresh(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    order = _bought_file(merchant, customer, customer_api)
    goods_revoke(order=Goods.objects.get(pk=order["goods"][0]["id"]).order)

    item = _library_item(customer_api, order["goods"][0]["id"])

    assert (item["url"], item["refresh"], item["status"]) == (None, None, "revoked")


def test_library_when_not_a_download_then_value_and_no_link_fields(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    product = product_create(merchant=merchant, name="Editor", price=1000, delivery="license_key")
    fund(customer, 10_000)
    bought = buy(customer_api, product.pk).json()["goods"][0]

    item = _library_item(customer_api, bought["id"])

    assert item["value"] == bought["value"] and (item["url"], item["refresh"]) == (None, None)


def test_library_when_the_secret_key_changed_then_no_url_shown_and_the_old_link_still_works(
    merchant: Any, customer: Any, customer_api: APIClient, settings: Any
) -> None:
    """A link made under an earlier SECRET_KEY cannot be shown again (only its hash is kept): the item says
    where to refresh it, and the link the buyer has keeps working until it expires."""
    order = _bought_file(merchant, customer, customer_api)
    link = order["goods"][0]["url"]
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789abcdef"

    item = _library_item(customer_api, order["goods"][0]["id"])

    assert item["url"] is None and item["refresh"] is not None
    assert _get(link).status_code == 200


def test_goods_when_stored_then_the_database_holds_no_link_token(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    order = _bought_file(merchant, customer, customer_api)
    token = urlsplit(order["goods"][0]["url"]).path.rsplit("/", 1)[1]
    refreshed = customer_api.post(f"/api/v1/library/{order['goods'][0]['id']}/link").json()
    tokens = [token, urlsplit(refreshed["url"]).path.rsplit("/", 1)[1]]

    stored = " ".join(str(v) for v in Goods.objects.filter(order_id=order["id"]).values_list())
    assert len(tokens[0]) >= 43 and len(tokens[1]) >= 43  # 256 bits, base64url
    assert not [t for t in tokens if t in stored]
