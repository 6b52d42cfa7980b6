"""Code pools under a storm: real threads through the REST API on real PostgreSQL (``transaction=True``)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from catalog.models import CodeStatus, Product, ProductCode
from catalog.services import product_codes_add, product_create
from orders.models import Goods, Order
from tests.conftest import client_for
from tests.factories import CustomerFactory, MerchantFactory
from tests.orders.conftest import buy, fund
from tests.orders.test_storm import _codes, _storm

pytestmark = [pytest.mark.django_db(transaction=True)]


def _pool(merchant: Any, codes: list[str]) -> Product:
    product = product_create(merchant=merchant, name="Conference ticket", price=1000, delivery="codes")
    if codes:
        product_codes_add(merchant=merchant, product_id=product.pk, codes=codes)
    return product


def test_code_storm_when_200_buyers_race_for_50_codes_then_50_orders_hold_the_50_distinct_codes() -> None:
    merchant = MerchantFactory.create()
    uploaded = [f"TICKET-{i:04d}-{i * 7919 % 10007:05d}" for i in range(50)]
    product = _pool(merchant, uploaded)
    buyers = [CustomerFactory.create() for _ in range(200)]
    for buyer in buyers:
        fund(buyer, 5000)
    clients = [client_for(buyer) for buyer in buyers]
    connection.close()

    responses = _storm([lambda c=c: buy(c, product.pk) for c in clients])

    assert _codes(responses) == Counter({(201, "ok"): 50, (409, "out_of_stock"): 150})
    paid = Order.objects.filter(product=product, status="paid")
    assert paid.count() == 50
    held = list(Goods.objects.filter(order__in=paid).values_list("order_id", "value"))
    assert len({order for order, _ in held}) == 50 and len(held) == 50  # one code per order
    assert sorted(value for _, value in held) == sorted(uploaded)  # distinct, and exactly the uploaded ones
    answered = sorted(r.json()["goods"][0]["value"] for r in responses if r.status_code == 201)
    assert answered == sorted(uploaded)
    codes = ProductCode.objects.filter(product=product)
    assert set(codes.values_list("status", flat=True)) == {CodeStatus.SOLD}
    assert {c.order_id: c.code for c in codes} == {order: value for order, value in held}
    assert Product.objects.get(pk=product.pk).stock == 0
    call_command("ledger_verify")


def test_code_storm_when_uploads_race_purchases_then_stock_always_equals_the_unsold_codes() -> None:
    merchant = MerchantFactory.create()
    product = _pool(merchant, [f"SEED-{i}" for i in range(10)])
    buyers = [CustomerFactory.create() for _ in range(80)]
    for buyer in buyers:
        fund(buyer, 5000)
    clients = [client_for(buyer) for buyer in buyers]
    merchant_client = client_for(merchant)
    connection.close()
    seen: list[tuple[int, int]] = []
    watching = threading.Event()

    def upload(batch: int) -> Any:
        codes = [f"BATCH-{batch}-{i}" for i in range(5)]
        return merchant_client.post(f"/api/v1/products/{product.pk}/codes", {"codes": codes}, format="json")

    def watch() -> None:
        # Reads stock and the count of available codes in one snapshot, over and over, while the storm runs.
        from django.db import connections

        try:
            while not watching.is_set():
                with connections["default"].cursor() as cursor:
                    cursor.execute(
                        "SELECT stock, (SELECT count(*) FROM catalog_productcode WHERE product_id = %s AND"
                        " status = 'available') FROM catalog_product WHERE id = %s",
                        [product.pk, product.pk],
                    )
                    seen.append(cursor.fetchone())
        finally:
            connections.close_all()

    watcher = threading.Thread(target=watch)
    watcher.start()
    jobs = [lambda c=c: buy(c, product.pk) for c in clients] + [lambda b=b: upload(b) for b in range(12)]
    responses = _storm(jobs)
    watching.set()
    watcher.join()

    assert all(r.status_code < 500 for r in responses)
    uploads = [r for r in responses if r.request["PATH_INFO"].endswith("/codes")]
    assert len(uploads) == 12 and all(r.status_code == 201 for r in uploads)
    sold = Order.objects.filter(product=product, status="paid").count()
    assert sold == sum(1 for r in responses if r.status_code == 201) - 12
    assert sold == 70 or sum(1 for r in responses if r.status_code == 409) == 80 - sold
    available = ProductCode.objects.filter(product=product, status=CodeStatus.AVAILABLE).count()
    assert Product.objects.get(pk=product.pk).stock == available == 70 - sold
    assert seen and all(stock == count for stock, count in seen), [s for s in seen if s[0] != s[1]][:5]
    assert Goods.objects.filter(product=product).values("value").distinct().count() == sold
    call_command("ledger_verify")
