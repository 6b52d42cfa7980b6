"""config.postgres: the long one-statement paths keep psycopg's placeholder conversion in its cache."""

from __future__ import annotations

from typing import Any

import psycopg._queries as psycopg_queries
import pytest

from orders.services.purchase import order_buy_with_wallet
from tests.factories import CustomerFactory, ProductFactory
from tests.orders.conftest import fund

pytestmark = pytest.mark.django_db


def test_wallet_purchase_when_run_then_its_statement_is_never_converted_outside_psycopg_s_cache(
    merchant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncached: list[bytes] = []
    for name in ("_query2pg_nocache", "_query2pg_client_nocache"):
        real = getattr(psycopg_queries, name)

        def spy(query: bytes, *args: Any, _real: Any = real) -> Any:
            uncached.append(query)
            return _real(query, *args)

        monkeypatch.setattr(psycopg_queries, name, spy)
    product = ProductFactory.create(merchant=merchant, price=100, stock=5, fulfillment="T")
    buyer = CustomerFactory.create()
    fund(buyer, 1000)

    for _ in range(2):
        order_buy_with_wallet(buyer=buyer, product_id=product.pk)

    assert not [query for query in uncached if b"purchase_taken" in query]
