"""Many buyers racing for the last items: real threads on real PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from catalog.locks import stock_take
from catalog.models import Product
from tests.conftest import client_for
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def _in_threads(count: int, work) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001  # any error in a thread is surfaced by the assertions below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_stock_take_when_many_buyers_race_then_never_oversold_and_catalog_shows_sold_out(api):
    product = ProductFactory.create(stock=5)
    api.get(f"/api/v1/products/{product.id}")

    def buy(_: int):
        with transaction.atomic():
            return stock_take(product.id, 1)

    results = _in_threads(20, buy)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(1 for r in results if r is not None) == 5
    product.refresh_from_db()
    assert product.stock == 0
    assert api.get(f"/api/v1/products/{product.id}").json()["stock"] == 0


def test_product_update_when_racing_with_buyers_then_stock_is_consistent(merchant):
    product = ProductFactory.create(merchant=merchant, stock=100)
    merchant_api = client_for(merchant)

    def work(index: int):
        if index == 0:
            return merchant_api.patch(f"/api/v1/products/{product.id}", {"price": 1234}, format="json").status_code
        with transaction.atomic():
            return stock_take(product.id, 1)

    results = _in_threads(12, work)

    assert results[0] == 200
    assert all(r is not None and not isinstance(r, Exception) for r in results[1:]), results
    product = Product.objects.get(pk=product.id)
    assert (product.stock, product.price) == (89, 1234)
