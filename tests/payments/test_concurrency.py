"""Row locks under real concurrency (PostgreSQL, threads): refunds and first Stripe customer."""

from __future__ import annotations

import threading

import pytest
import stripe
from django.db import connection

from payments.models import Payment, Refund, StripeCustomer
from payments.services.customers import customer_ensure
from tests.conftest import client_for
from tests.factories import ProductFactory
from tests.wallets.conftest import fund, verify
from wallets.models import Account

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


def _run_concurrently(count: int, work) -> list:
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001  # any error in a thread is recorded and asserted on by the caller
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_partial_refunds_then_never_more_than_paid(fake_stripe, customer, merchant):
    product = ProductFactory.create(merchant=merchant, price=1000, stock=None)
    fund(customer, 1000)
    order_id = (
        client_for(customer)
        .post("/api/v1/orders", {"product": product.pk, "payment_method": "wallet"}, format="json")
        .json()["id"]
    )
    merchant_api = [client_for(merchant) for _ in range(8)]

    statuses = _run_concurrently(
        8,
        lambda i: (
            merchant_api[i].post("/api/v1/refunds", {"order": order_id, "amount": 300}, format="json").status_code
        ),
    )

    assert sorted(statuses) == [201, 201, 201, 409, 409, 409, 409, 409], statuses
    payment = Payment.objects.get(order__id=order_id)
    assert payment.amount_refunded == 900
    assert sum(Refund.objects.filter(payment=payment).values_list("amount", flat=True)) == 900
    assert Account.objects.get(owner=customer).balance == 900
    assert verify()[0] == 0


def test_concurrent_card_refunds_then_never_more_than_paid(fake_stripe, customer, merchant):
    product = ProductFactory.create(merchant=merchant, price=1000, stock=None)
    pm = fake_stripe.attach_card(customer)
    order_id = (
        client_for(customer)
        .post("/api/v1/orders", {"product": product.pk, "payment_method": "card", "card": pm}, format="json")
        .json()["id"]
    )
    merchant_api = [client_for(merchant) for _ in range(6)]

    statuses = _run_concurrently(
        6,
        lambda i: (
            merchant_api[i].post("/api/v1/refunds", {"order": order_id, "amount": 400}, format="json").status_code
        ),
    )

    assert sorted(statuses) == [201, 201, 409, 409, 409, 409], statuses
    assert sum(r.amount for r in stripe.Refund.list(limit=20).data) == 800
    assert Payment.objects.get(order__id=order_id).amount_refunded == 800
    assert verify()[0] == 0


def test_concurrent_first_use_then_one_stripe_customer(fake_stripe, customer):
    ids = _run_concurrently(6, lambda i: customer_ensure(user=customer))

    assert len(set(ids)) == 1, ids
    assert StripeCustomer.objects.get(user=customer).stripe_customer_id == ids[0]
    # A StripeObject is not a dict: read its metadata through to_dict().
    live = [
        c
        for c in stripe.Customer.list(limit=50).data
        if c.metadata and c.metadata.to_dict().get("user_id") == customer.pk
    ]
    assert [c.id for c in live] == [ids[0]]
