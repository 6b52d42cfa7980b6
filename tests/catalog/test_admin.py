"""The products back office: search, filters, soft-delete actions that drop the public cache."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog.models import Product
from tests.factories import MerchantFactory, ProductFactory

pytestmark = pytest.mark.django_db

URL = "/admin/catalog/product/"


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _listed(response) -> set[str]:
    return {product.id for product in response.context["cl"].result_list}


def test_admin_products_when_searching_then_by_name_id_or_merchant_email(admin_client):
    merchant = MerchantFactory.create(email="shop@example.test")
    by_merchant = ProductFactory.create(merchant=merchant, name="Alpha")
    by_name = ProductFactory.create(name="Jazz loops")
    other = ProductFactory.create(name="Other")

    assert _listed(admin_client.get(URL, {"q": "shop@example.test"})) == {by_merchant.id}
    assert _listed(admin_client.get(URL, {"q": "jazz"})) == {by_name.id}
    assert _listed(admin_client.get(URL, {"q": other.id})) == {other.id}


def test_admin_products_when_filtered_then_by_active_and_deleted(admin_client):
    live = ProductFactory.create()
    inactive = ProductFactory.create(is_active=False)
    deleted = ProductFactory.create()
    Product.objects.filter(pk=deleted.pk).update(deleted_at=deleted.created_at)

    assert _listed(admin_client.get(URL, {"deleted": "yes"})) == {deleted.id}
    assert _listed(admin_client.get(URL, {"deleted": "no"})) == {live.id, inactive.id}
    assert _listed(admin_client.get(URL, {"is_active__exact": "0"})) == {inactive.id}


def test_admin_products_when_soft_delete_action_then_hidden_from_cached_catalog(
    admin_client, api, django_capture_on_commit_callbacks
):
    product = ProductFactory.create()
    assert api.get(f"/api/v1/products/{product.id}").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(URL, {"action": "soft_delete", "_selected_action": [product.id]})

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.deleted_at is not None
    assert api.get(f"/api/v1/products/{product.id}").status_code == 404


def test_admin_products_when_edited_then_cached_catalog_shows_it(admin_client, api, django_capture_on_commit_callbacks):
    product = ProductFactory.create(price=1000)
    api.get(f"/api/v1/products/{product.id}")
    form = {
        "merchant": product.merchant_id,
        "name": product.name,
        "description": product.description,
        "price": 4200,
        "stock": 10,
        "is_active": "on",
        "fulfillment": product.fulfillment,
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{URL}{product.id}/change/", form)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert api.get(f"/api/v1/products/{product.id}").json()["price"] == 4200


def test_admin_products_when_staff_then_no_hard_delete(admin_client):
    product = ProductFactory.create()

    response = admin_client.post(f"{URL}{product.id}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Product.objects.filter(pk=product.id).exists()


def test_admin_products_when_merchant_then_no_access(merchant):
    client = Client()
    client.force_login(merchant)

    response = client.get(URL)

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
