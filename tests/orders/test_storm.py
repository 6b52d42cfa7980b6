"""Many buyers at once against one product, through the REST API, on real PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connection, connections

from catalog.models import Product
from orders.models import Order
from tests.conftest import client_for
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.orders.conftest import buy, fund
from wallets.models import Account

pytestmark = [pytest.mark.django_db(transaction=True)]

# Bounded: the machine's PostgreSQL is shared (max_connections 100).
THREADS = 24


def _storm(jobs):
    """Runs every job (a callable returning a response) from THREADS threads released together."""
    start = threading.Barrier(min(THREADS, len(jobs)))
    lock = threading.Lock()
    queue = list(jobs)
    results: list = []

    def worker() -> None:
        try:
            start.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    job = queue.pop()
                response = job()
                with lock:
                    results.append(response)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(worker) for _ in range(min(THREADS, len(jobs)))]
        for future in futures:
            future.result()
    return results


def _codes(responses) -> Counter:
    return Counter((r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else "ok") for r in responses)


def test_storm_when_200_buyers_for_stock_50_then_exactly_50_sold():
    product = ProductFactory.create(merchant=MerchantFactory.create(), price=1000, stock=50)
    buyers = [CustomerFactory.create() for _ in range(200)]
    for buyer in buyers:
        fund(buyer, 5000)
    clients = [client_for(buyer) for buyer in buyers]
    connection.close()

    responses = _storm([lambda c=c: buy(c, product.pk) for c in clients])

    codes = _codes(responses)
    assert codes == Counter({(201, "ok"): 50, (409, "out_of_stock"): 150}), codes
    assert Product.objects.get(pk=product.pk).stock == 0
    assert Order.objects.filter(product=product, status="paid").count() == 50
    assert (
        sorted(Account.objects.filter(owner__in=buyers).values_list("balance", flat=True)) == [4000] * 50 + [5000] * 150
    )
    assert Account.objects.get(owner=product.merchant).balance == 50 * 950
    call_command("ledger_verify")


def test_storm_when_each_buyer_double_spends_then_no_wallet_negative():
    product = ProductFactory.create(merchant=MerchantFactory.create(), price=1000, stock=None)
    buyers = [CustomerFactory.create() for _ in range(60)]
    for buyer in buyers:
        fund(buyer, 1000)  # enough for exactly one
    clients = [client_for(buyer) for buyer in buyers]
    connection.close()

    responses = _storm([lambda c=c: buy(c, product.pk) for c in clients for _ in range(2)])

    codes = _codes(responses)
    assert codes == Counter({(201, "ok"): 60, (402, "insufficient_funds"): 60}), codes
    assert set(Account.objects.filter(owner__in=buyers).values_list("balance", flat=True)) == {0}
    assert not Account.objects.filter(balance__lt=0, owner__isnull=False).exists()
    for buyer in buyers:
        assert Order.objects.filter(buyer=buyer).count() == 1
    call_command("ledger_verify")


def test_storm_when_stock_and_cancels_race_then_stock_never_oversold():
    """Card reservations, cancels and wallet purchases on one product at once."""
    from tests.orders.conftest import reserve

    product = ProductFactory.create(merchant=MerchantFactory.create(), price=500, stock=20)
    buyers = [CustomerFactory.create() for _ in range(40)]
    for buyer in buyers:
        fund(buyer, 5000)
    pending = [reserve(buyer, product) for buyer in buyers[:10]]
    clients = {buyer.pk: client_for(buyer) for buyer in buyers}
    connection.close()

    jobs = [lambda o=o: clients[o.buyer_id].post(f"/api/v1/orders/{o.pk}/cancel") for o in pending]
    jobs += [lambda b=b: buy(clients[b.pk], product.pk) for b in buyers]
    responses = _storm(jobs)

    assert all(r.status_code < 500 for r in responses)
    sold = Order.objects.filter(product=product, status="paid").count()
    held = Order.objects.filter(product=product, status="pending").count()
    assert held == 0
    assert 10 <= sold <= 20
    # Every unit is either sold or back on the shelf: none lost, none sold twice.
    stock = Product.objects.get(pk=product.pk).stock
    assert stock is not None and stock + sold == 20
    call_command("ledger_verify")
