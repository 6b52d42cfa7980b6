"""Many identical POSTs racing with one Idempotency-Key: exactly one is performed."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import IdempotencyKey, IdempotencyKeyStatus, User
from orders.models import Order
from tests.api.helpers import balance, fund
from tests.conftest import client_for
from tests.factories import PASSWORD, CustomerFactory, ProductFactory
from wallets.models import Entry, EntryKind

THREADS = 20


def _race(make_client, path: str, body: dict, key: str) -> list:
    barrier = threading.Barrier(THREADS)
    responses: list = [None] * THREADS

    def worker(index: int) -> None:
        try:
            client = make_client()
            barrier.wait(timeout=30)
            responses[index] = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(response is not None for response in responses)
    return responses


def _assert_one_performed(responses: list, created_status: int) -> bytes:
    performed = [r for r in responses if r.status_code == created_status and "Idempotent-Replayed" not in r]
    replayed = [r for r in responses if r.status_code == created_status and "Idempotent-Replayed" in r]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(performed) == 1, [(r.status_code, r.content[:200]) for r in responses]
    assert len(performed) + len(replayed) + len(in_use) == THREADS
    assert all(r.content == performed[0].content for r in replayed)
    assert all(r.json()["error"]["code"] == "idempotency_key_in_use" for r in in_use)
    return performed[0].content


@pytest.mark.django_db(transaction=True)
def test_order_post_when_20_identical_requests_race_with_one_key_then_one_order_and_one_entry():
    buyer = CustomerFactory.create()
    wallet = fund(buyer, 100_000)
    product = ProductFactory.create(price=1000, stock=50)
    body = {"product": product.pk, "quantity": 1, "payment_method": "wallet"}

    responses = _race(lambda: client_for(buyer), "/api/v1/orders", body, "order-race-1")

    first = _assert_one_performed(responses, 201)
    assert Order.objects.filter(buyer=buyer).count() == 1
    assert Entry.objects.filter(kind=EntryKind.PURCHASE).count() == 1
    assert balance(wallet) == 100_000 - 1000
    product.refresh_from_db()
    assert product.stock == 49
    assert IdempotencyKey.objects.get().status == IdempotencyKeyStatus.COMPLETED

    replay = client_for(buyer).post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-race-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.content == first

    other = dict(body, quantity=2)
    reused = client_for(buyer).post("/api/v1/orders", other, format="json", HTTP_IDEMPOTENCY_KEY="order-race-1")
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_register_when_20_identical_requests_race_with_one_key_then_one_user():
    """``auth/*`` answers are never stored (they carry tokens), so nothing is replayed: one registration
    creates the user and every other one is told, cleanly, that the email is taken."""
    from rest_framework.test import APIClient

    body = {"email": "race@example.test", "password": PASSWORD, "role": "merchant"}

    responses = _race(APIClient, "/api/v1/auth/register", body, "register-race-1")

    statuses = [(r.status_code, r.content[:200]) for r in responses]
    created = [r for r in responses if r.status_code == 201]
    taken = [r for r in responses if r.status_code == 400]
    assert len(created) == 1 and len(taken) == THREADS - 1, statuses
    assert not any("Idempotent-Replayed" in r for r in responses)
    assert all(r.json()["error"]["code"] == "validation_error" for r in taken)
    assert all(r.json()["error"]["param"] == "email" for r in taken)
    assert User.objects.filter(email="race@example.test").count() == 1
