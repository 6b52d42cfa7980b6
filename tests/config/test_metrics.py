"""``/metrics``: the platform's counters move once per committed event, and only the token reads them."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from config import metrics
from orders.models import OrderStatus
from orders.services.purchase import order_buy_with_wallet
from payments.models import PaymentKind, RefundStatus
from tests.factories import ProductFactory
from tests.orders.conftest import buy, fund
from tests.payments.test_webhooks import deliver, event_body, sign
from wallets.models import EntryKind

TOKEN = "metrics-token-for-tests"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(token: str | None = TOKEN) -> Samples:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name.startswith("platform_") and not sample.name.endswith("_created")
    }


def moved(before: Samples, after: Samples) -> dict[str, float]:
    """The platform samples that changed, as ``name{label=value,…}`` → change (histogram buckets left out)."""
    changes = {}
    for key in before.keys() | after.keys():
        name, labels = key
        if name.endswith(("_bucket", "_sum")):
            continue
        delta = after.get(key, 0.0) - before.get(key, 0.0)
        if delta:
            changes[name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"] = delta
    return changes


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.django_db(transaction=True)
def test_each_event_when_committed_then_its_counter_moves_by_exactly_one(
    token: str, fake_stripe: Any, customer_api: Any, customer: Any, merchant_api: Any, merchant: Any
) -> None:
    product = ProductFactory.create(merchant=merchant, price=1000, stock=1, fulfillment="KEY-1")
    card_product = ProductFactory.create(merchant=merchant, price=700, stock=5, fulfillment="KEY-2")
    fund(customer, 5000)
    declining = fake_stripe.attach_card(customer, "4000000000000341")
    before = scrape()

    bought = customer_api.post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "wallet"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    replayed = customer_api.post(
        "/api/v1/orders", {"product": product.pk, "payment_method": "wallet"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    sold_out = buy(customer_api, product.pk)
    declined = buy(customer_api, card_product.pk, payment_method="card", card=declining)
    refunded = merchant_api.post("/api/v1/refunds", {"order": bought.json()["id"]}, format="json")
    body = event_body("customer.created", {"id": "cus_metrics", "object": "customer"})
    first, duplicate = deliver(body, sign(body)), deliver(body, sign(body))

    assert bought.status_code == 201, bought.content
    assert replayed.status_code == 201 and replayed["Idempotent-Replayed"] == "true"
    assert sold_out.status_code == 409, sold_out.content
    assert declined.status_code == 402, declined.content
    assert refunded.status_code == 201, refunded.content
    assert first.status_code == duplicate.status_code == 200
    assert moved(before, scrape()) == {
        "platform_payments_total{kind=order,outcome=succeeded}": 1,
        "platform_payments_total{kind=order,outcome=failed}": 1,
        "platform_ledger_entries_total{kind=purchase}": 1,
        "platform_ledger_entries_total{kind=refund}": 1,
        "platform_refunds_total{outcome=succeeded}": 1,
        "platform_idempotent_replays_total{}": 1,
        "platform_out_of_stock_total{}": 1,
        "platform_stripe_events_total{state=received}": 2,
        "platform_stripe_events_total{state=duplicate}": 1,
        # the receipts' drain after the wallet order, and the notice of its refund: one task run each
        "platform_celery_tasks_total{outcome=succeeded,task=orders.tasks.receipts_send_due}": 1,
        "platform_celery_tasks_total{outcome=succeeded,task=orders.tasks.order_refund_notice_send}": 1,
    }


@pytest.mark.django_db(transaction=True)
def test_wallet_purchase_when_the_caller_rolls_back_then_nothing_is_counted(
    token: str, customer: Any, merchant: Any
) -> None:
    product = ProductFactory.create(merchant=merchant, price=1000, stock=3, fulfillment="KEY-3")
    fund(customer, 5000)
    before = scrape()

    with pytest.raises(RuntimeError), transaction.atomic():
        order = order_buy_with_wallet(buyer=customer, product_id=product.pk)
        assert order.status == OrderStatus.PAID
        raise RuntimeError("the caller gives up")

    assert moved(before, scrape()) == {}
    product.refresh_from_db()
    assert product.stock == 3


@pytest.mark.django_db
def test_celery_task_when_run_then_its_outcome_is_counted(token: str) -> None:
    from config.tasks import purge_idempotency_keys

    before = scrape()

    purge_idempotency_keys.delay()

    assert moved(before, scrape()) == {
        "platform_celery_tasks_total{outcome=succeeded,task=config.tasks.purge_idempotency_keys}": 1
    }


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_metrics_when_token_set_and_not_given_then_401(token: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}

    response = Client().get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"platform_" not in response.content


@pytest.mark.django_db
def test_metrics_when_no_token_and_debug_off_then_404(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.DEBUG = False

    assert Client().get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_when_no_token_and_debug_on_then_open(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.DEBUG = True

    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE platform_payments_total counter" in response.content


def test_labels_when_every_enum_value_then_counted_under_its_own_name_never_other() -> None:
    from orders.models import DeliveryStatus

    assert {str(kind) for kind in PaymentKind} <= metrics.PAYMENT_KINDS
    assert {str(kind) for kind in EntryKind} <= metrics.LEDGER_KINDS
    assert {str(s) for s in RefundStatus} - {"pending_approval"} <= metrics.REFUND_OUTCOMES
    assert {str(s) for s in DeliveryStatus} - {DeliveryStatus.PENDING} <= metrics.DELIVERY_OUTCOMES
    assert metrics.bounded("card_declined_4242", metrics.PAYMENT_OUTCOMES) == "other"
