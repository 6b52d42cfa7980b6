"""The merchant sees every code of a pool with its status and the order holding it, in the API and on the
dashboard's product page: available (no order), sold (the buyer's order), revoked (the refunded order)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from catalog.services import product_codes_add, product_create
from tests.conftest import client_for
from tests.factories import CustomerFactory
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db


def _pool_with_each_status(merchant: Any, django_capture_on_commit_callbacks: Any) -> tuple[str, dict[str, str]]:
    """A code pool where KEEP is sold, BACK is revoked by a full refund and SPARE is still available."""
    product = product_create(merchant=merchant, name="Tickets", price=1000, delivery="codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["KEEP", "BACK", "SPARE"])
    orders: dict[str, str] = {}
    for code in ("KEEP", "BACK"):
        buyer = CustomerFactory.create()
        fund(buyer, 5_000)
        order = buy(client_for(buyer), product.pk).json()
        assert [g["value"] for g in order["goods"]] == [code]
        orders[code] = order["id"]
    with django_capture_on_commit_callbacks(execute=True):
        refund = client_for(merchant).post("/api/v1/refunds", {"order": orders["BACK"]}, format="json")
    assert refund.status_code == 201, refund.json()
    return product.pk, orders


def test_codes_api_when_sold_revoked_and_available_then_each_with_its_status_and_order(
    merchant: Any, merchant_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    product_id, orders = _pool_with_each_status(merchant, django_capture_on_commit_callbacks)

    listed = merchant_api.get(f"/api/v1/products/{product_id}/codes").json()["results"]

    assert sorted((c["code"], c["status"], c["order"]) for c in listed) == [
        ("BACK", "revoked", orders["BACK"]),
        ("KEEP", "sold", orders["KEEP"]),
        ("SPARE", "available", None),
    ]


def test_product_page_when_sold_revoked_and_available_then_each_row_shows_status_and_links_its_order(
    merchant: Any, django_capture_on_commit_callbacks: Any
) -> None:
    product_id, orders = _pool_with_each_status(merchant, django_capture_on_commit_callbacks)
    dashboard = Client()
    dashboard.force_login(merchant)

    page = dashboard.get(f"/dashboard/products/{product_id}/").content.decode()

    rows = {
        re.sub(r"<[^>]+>", " ", row).split()[0]: row
        for row in re.findall(r"<tr><td><code>.*?</tr>", page, flags=re.DOTALL)
    }
    assert set(rows) == {"KEEP", "BACK", "SPARE"}
    assert "Sold" in rows["KEEP"] and f'href="/dashboard/sales/{orders["KEEP"]}/"' in rows["KEEP"]
    assert "Revoked" in rows["BACK"] and f'href="/dashboard/sales/{orders["BACK"]}/"' in rows["BACK"]
    assert "Available" in rows["SPARE"] and "/dashboard/sales/" not in rows["SPARE"]
    sale = dashboard.get(f"/dashboard/sales/{orders['BACK']}/")
    assert sale.status_code == 200 and "BACK" in sale.content.decode()
