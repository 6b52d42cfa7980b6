"""A retried card order or top-up never makes a second order, deposit or charge; its errors name it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from accounts.models import IdempotencyKey, IdempotencyKeyStatus
from orders.models import Order
from payments.models import Payment
from tests.conftest import assert_error
from tests.factories import ProductFactory
from wallets.models import Deposit

pytestmark = pytest.mark.stripe

ORDERS = "/api/v1/orders"
DEPOSITS = "/api/v1/wallet/deposits"


def _intents() -> list:
    return list(stripe.PaymentIntent.list(limit=100).data)


def _post(client, path: str, body: dict, key: str):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_card_order_when_stripe_unavailable_then_502_names_order_and_retry_replays_it(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user)
    body = {"product": ProductFactory.create(price=1500, stock=3).pk, "payment_method": "card", "card": pm}

    with fake_stripe.unreachable():
        first = _post(customer_api, ORDERS, body, "buy-502")
    retry = _post(customer_api, ORDERS, body, "buy-502")

    error = assert_error(first, 502, "stripe_unavailable")
    order = Order.objects.get()
    assert error["order"] == order.pk
    assert retry.status_code == 502
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert Order.objects.count() == 1
    assert Payment.objects.count() == 1
    assert len(_intents()) <= 1


def test_card_order_when_first_attempt_died_then_retry_resumes_same_order_and_one_charge(
    fake_stripe, customer_api, settings
):
    settings.IDEMPOTENCY_LOCK_TIMEOUT = timedelta(seconds=30)
    pm = fake_stripe.attach_card(customer_api.user)
    body = {"product": ProductFactory.create(price=1500, stock=3).pk, "payment_method": "card", "card": pm}
    first = _post(customer_api, ORDERS, body, "buy-crash")
    assert first.status_code == 201, first.content
    # The worker died before it could store its answer: the claim is left in progress, then abandoned.
    IdempotencyKey.objects.update(
        status=IdempotencyKeyStatus.IN_PROGRESS, response_body=None, locked_at=timezone.now() - timedelta(minutes=1)
    )

    retry = _post(customer_api, ORDERS, body, "buy-crash")

    assert retry.status_code == 201, retry.content
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["status"] == "paid"
    assert Order.objects.count() == 1
    assert len(_intents()) == 1


def test_card_order_when_declined_then_402_names_the_order(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user, number="4000000000000341")
    body = {"product": ProductFactory.create(price=1500, stock=3).pk, "payment_method": "card", "card": pm}

    error = assert_error(_post(customer_api, ORDERS, body, "buy-declined"), 402, "card_declined")

    assert error["order"] == Order.objects.get().pk


def test_deposit_when_stripe_unavailable_then_502_names_deposit_and_retry_never_charges_again(
    fake_stripe, customer_api
):
    pm = fake_stripe.attach_card(customer_api.user)
    body = {"amount": 2500, "payment_method": pm}

    with fake_stripe.unreachable():
        first = _post(customer_api, DEPOSITS, body, "top-up")
    IdempotencyKey.objects.all().delete()  # even a claim that was lost: the payment remembers the request
    retry = _post(customer_api, DEPOSITS, body, "top-up")

    error = assert_error(first, 502, "stripe_unavailable")
    deposit = Deposit.objects.get()
    assert error["deposit"] == deposit.pk
    assert retry.status_code == 201, retry.content
    assert retry.json()["id"] == deposit.pk
    assert Deposit.objects.count() == 1
    assert len(_intents()) <= 1


def test_card_order_stripe_idempotency_key_derives_from_client_key_and_scope(fake_stripe, customer_api, monkeypatch):
    from config.request_keys import request_key_for

    sent: list[str] = []
    create = stripe.PaymentIntent.create

    def spy(*args, **kwargs):
        sent.append(kwargs.get("idempotency_key", ""))
        return create(*args, **kwargs)

    monkeypatch.setattr(stripe.PaymentIntent, "create", spy)
    pm = fake_stripe.attach_card(customer_api.user)
    body = {"product": ProductFactory.create(price=1500, stock=3).pk, "payment_method": "card", "card": pm}

    assert _post(customer_api, ORDERS, body, "client-key-1").status_code == 201

    assert sent == [f"pi-create-{request_key_for(f'usr:{customer_api.user.pk}', 'client-key-1')}"]


def test_card_order_when_its_claim_was_lost_then_the_retry_resumes_it_through_the_payment(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user)
    body = {"product": ProductFactory.create(price=1500, stock=3).pk, "payment_method": "card", "card": pm}
    with fake_stripe.unreachable():
        first = _post(customer_api, ORDERS, body, "buy-lost-claim")
    IdempotencyKey.objects.all().delete()  # the retry's claim is new, but the payment remembers the request

    retry = _post(customer_api, ORDERS, body, "buy-lost-claim")

    assert first.status_code == 502
    assert retry.status_code == 201, retry.content
    assert retry.json()["id"] == Order.objects.get().pk
    assert Payment.objects.count() == 1
    assert len(_intents()) <= 1
