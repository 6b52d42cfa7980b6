import cProfile
import pstats
import time

import pytest
from django.test import Client

from tests.payments.test_webhooks import deliver, event_body, sign


@pytest.mark.django_db(transaction=True)
def test_bench(fake_stripe, settings):
    client = Client()
    n = 100
    bodies = [event_body("customer.updated", {"id": f"cus_{i}", "object": "customer"}) for i in range(n)]
    prof = cProfile.Profile()
    prof.enable()
    t = time.perf_counter()
    for b in bodies:
        assert deliver(b, sign(b), client=client).status_code == 200
    dt = time.perf_counter() - t
    prof.disable()
    print(f"claim-only events: {n / dt:.0f}/s")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
