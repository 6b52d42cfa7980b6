"""A wallet order's retry with the same Idempotency-Key: resumed from its payment, never a second order; a new
claim makes no look-up for an earlier attempt."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import IdempotencyKey
from orders.models import Order
from payments.models import Payment
from tests.factories import ProductFactory
from tests.orders.conftest import fund

pytestmark = pytest.mark.django_db


def _buy(client: APIClient, product_id: str, key: str) -> Any:
    body = {"product": product_id, "payment_method": "wallet"}
    return client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_wallet_order_when_its_claim_was_lost_then_the_retry_answers_the_same_order(
    customer: Any, customer_api: APIClient
) -> None:
    product = ProductFactory.create(price=1000, stock=5, fulfillment="KEY")
    fund(customer, 5000)
    first = _buy(customer_api, product.pk, "lost-claim")
    IdempotencyKey.objects.all().delete()

    retry = _buy(customer_api, product.pk, "lost-claim")

    assert first.status_code == 201 and retry.status_code == 201, retry.content
    assert retry.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1 and Payment.objects.count() == 1
    product.refresh_from_db()
    assert product.stock == 4


def test_wallet_order_when_the_claim_is_new_then_no_query_looks_for_an_earlier_payment(
    customer: Any, customer_api: APIClient
) -> None:
    product = ProductFactory.create(price=1000, stock=5, fulfillment="KEY")
    fund(customer, 5000)
    _buy(customer_api, product.pk, "warm")  # caches terms and wallet ids

    with CaptureQueriesContext(connection) as queries:
        assert _buy(customer_api, product.pk, "fresh").status_code == 201

    lookups = [
        q["sql"] for q in queries.captured_queries if "request_key" in q["sql"] and q["sql"].startswith("SELECT")
    ]
    assert lookups == []


def test_wallet_order_when_a_claim_was_taken_over_then_it_looks_and_resumes(
    customer: Any, customer_api: APIClient, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import IdempotencyKeyStatus

    settings.IDEMPOTENCY_LOCK_TIMEOUT = timedelta(seconds=30)
    product = ProductFactory.create(price=1000, stock=5, fulfillment="KEY")
    fund(customer, 5000)
    first = _buy(customer_api, product.pk, "died")
    IdempotencyKey.objects.update(  # as if the first attempt died before it answered
        status=IdempotencyKeyStatus.IN_PROGRESS, response_body=None, locked_at=timezone.now() - timedelta(minutes=1)
    )

    with CaptureQueriesContext(connection) as queries:
        retry = _buy(customer_api, product.pk, "died")

    assert retry.status_code == 201 and retry.json()["id"] == first.json()["id"]
    assert any("request_key" in q["sql"] and q["sql"].startswith("SELECT") for q in queries.captured_queries)
    assert Order.objects.count() == 1
