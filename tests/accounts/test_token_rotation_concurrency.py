"""A refresh token presented by several clients at once rotates for exactly one of them."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import tokens_for
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

RACERS = 8


def test_refresh_when_same_token_raced_by_8_threads_then_exactly_one_new_pair():
    refresh = tokens_for(CustomerFactory.create())["refresh"]
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []
    pairs: list[dict] = []
    lock = threading.Lock()

    def race() -> None:
        try:
            client = APIClient()
            barrier.wait(timeout=10)
            response = client.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")
            with lock:
                statuses.append(response.status_code)
                if response.status_code == 200:
                    pairs.append(response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200] + [401] * (RACERS - 1)
    assert (
        APIClient().post("/api/v1/auth/token/refresh", {"refresh": pairs[0]["refresh"]}, format="json").status_code
        == 200
    )
