"""The receipts' outbox: the paying transaction makes the receipt due, one drain sends every due receipt once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.mail import STALE_CLAIM
from accounts.models import SentEmail, SentEmailStatus
from orders import tasks
from orders.models import Order, ReceiptDue
from orders.services import notices
from orders.services.purchase import order_buy_with_wallet
from tests.factories import CustomerFactory, ProductFactory
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db


def _paid_orders(merchant: Any, count: int) -> list[str]:
    product = ProductFactory.create(merchant=merchant, price=100, stock=count, fulfillment="TEXT-1")
    ids = []
    for _ in range(count):
        buyer = CustomerFactory.create()
        fund(buyer, 1000)
        ids.append(order_buy_with_wallet(buyer=buyer, product_id=product.pk).pk)
    return ids


def _product_funded_for(merchant: Any, customer: Any) -> Any:
    """A product of three units and a customer with the money for them."""
    product = ProductFactory.create(merchant=merchant, price=1000, stock=3, fulfillment="KEY-3")
    fund(customer, 5000)
    return product


def test_wallet_purchase_when_it_commits_then_its_receipt_is_due_in_the_same_statement(
    merchant: Any, customer: Any, customer_api: APIClient, product: Any
) -> None:
    fund(customer, 5000)

    order = buy(customer_api, product.pk).json()

    due = ReceiptDue.objects.get(order_id=order["id"])
    assert due.claimed_at is None and due.due_at == Order.objects.get(pk=order["id"]).created_at
    assert mail.outbox == []  # nothing is sent before the commit (the test's transaction never commits)


@pytest.mark.django_db(transaction=True)
def test_wallet_purchase_when_the_caller_rolls_back_then_no_receipt_is_due_nor_sent(
    merchant: Any, customer: Any
) -> None:
    product = _product_funded_for(merchant, customer)

    with pytest.raises(RuntimeError), transaction.atomic():
        order_buy_with_wallet(buyer=customer, product_id=product.pk)
        raise RuntimeError("the caller changed its mind")

    assert not ReceiptDue.objects.exists() and mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_wallet_purchase_when_committed_then_the_kick_sends_the_receipt_and_empties_the_outbox(
    merchant: Any, customer: Any
) -> None:
    product = _product_funded_for(merchant, customer)

    order = order_buy_with_wallet(buyer=customer, product_id=product.pk)  # autocommit: the kick runs the drain

    assert [m.to for m in mail.outbox] == [[customer.email]] and order.pk in str(mail.outbox[0].subject)
    assert not ReceiptDue.objects.exists()
    assert SentEmail.objects.get(key=f"order-receipt:{order.pk}").status == SentEmailStatus.SENT


def test_drain_when_many_are_due_then_each_receipt_goes_once_in_batches_and_a_second_drain_sends_none(
    merchant: Any, django_assert_max_num_queries: Any
) -> None:
    ids = _paid_orders(merchant, 7)

    with django_assert_max_num_queries(3 * 6 + 1):  # per batch: claim, orders, goods, mail claim, sent, delete
        assert notices.receipts_send_due(batch=3) == 7
    assert notices.receipts_send_due(batch=3) == 0

    assert sorted(str(m.subject) for m in mail.outbox) == sorted(
        f"Your receipt for {Order.objects.get(pk=i).product.name} ({i})" for i in ids
    )
    assert not ReceiptDue.objects.exists()


def test_drain_when_a_receipt_went_out_already_then_it_is_not_sent_again_and_its_row_goes(merchant: Any) -> None:
    (order_id,) = _paid_orders(merchant, 1)
    assert tasks.order_receipt_send(order_id) is True
    ReceiptDue.objects.create(order_id=order_id)  # a kick that raced the direct send

    assert notices.receipts_send_due() == 0
    assert len(mail.outbox) == 1 and not ReceiptDue.objects.exists()


def test_drain_when_a_row_is_claimed_then_only_a_stale_claim_is_taken_again(merchant: Any) -> None:
    live, dead = _paid_orders(merchant, 2)
    ReceiptDue.objects.filter(order_id=live).update(claimed_at=timezone.now())  # a drain at work
    ReceiptDue.objects.filter(order_id=dead).update(claimed_at=timezone.now() - STALE_CLAIM - timedelta(seconds=1))

    assert notices.receipts_send_due() == 1

    assert [m.subject for m in mail.outbox] == [f"Your receipt for {Order.objects.get(pk=dead).product.name} ({dead})"]
    assert list(ReceiptDue.objects.values_list("order_id", flat=True)) == [live]


def test_drain_when_the_mail_server_fails_then_the_rows_stay_due_and_the_next_drain_sends(
    merchant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.mail.backends.locmem import EmailBackend

    ids = _paid_orders(merchant, 2)

    def down(self: object, messages: object) -> int:
        raise ConnectionError("smtp down")

    with monkeypatch.context() as patch:
        patch.setattr(EmailBackend, "send_messages", down)
        with pytest.raises(ConnectionError):
            notices.receipts_send_due()
    assert set(ReceiptDue.objects.filter(claimed_at__isnull=True).values_list("order_id", flat=True)) == set(ids)

    assert notices.receipts_send_due() == 2
    assert len(mail.outbox) == 2


def test_kick_when_batching_then_one_drain_per_window_queued_with_that_delay(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.RECEIPT_BATCH_SECONDS = 30.0
    monkeypatch.setattr(notices.DrainKick, "next_at", 0.0)
    queued: list[Any] = []
    monkeypatch.setattr(tasks.receipts_send_due, "apply_async", lambda **kw: queued.append(kw))

    for _ in range(5):
        notices.receipts_kick()

    assert queued == [{"countdown": 30.0}]


def test_kick_when_the_broker_is_down_then_no_error_and_the_next_kick_tries_again(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.RECEIPT_BATCH_SECONDS = 30.0
    monkeypatch.setattr(notices.DrainKick, "next_at", 0.0)
    attempts: list[Any] = []

    def refused(**kw: Any) -> None:
        attempts.append(kw)
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.receipts_send_due, "apply_async", refused)

    notices.receipts_kick()
    notices.receipts_kick()

    assert len(attempts) == 2
    assert "could not queue the receipts' drain" in caplog.text


def test_beat_when_configured_then_the_sweep_drains_receipts_every_minute(settings: Any) -> None:
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "orders.tasks.receipts_send_due")
    assert entry["schedule"] <= 60


def test_receipt_of_a_file_when_sent_then_it_carries_the_order_s_own_link_which_keeps_working(
    merchant: Any, customer: Any, customer_api: APIClient, settings: Any, tmp_path: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.services import product_create, product_file_put

    settings.MEDIA_ROOT = str(tmp_path / "media")
    product = product_create(merchant=merchant, name="Guide", price=1000, delivery="file")
    product_file_put(merchant=merchant, product_id=product.pk, upload=SimpleUploadedFile("g.txt", b"guide text"))
    fund(customer, 10_000)
    order = buy(customer_api, product.pk).json()
    given = order["goods"][0]["url"]

    assert notices.receipts_send_due() == 1

    assert given and given in str(mail.outbox[0].body)
    path = given.removeprefix(settings.PUBLIC_URL)
    assert b"".join(APIClient().get(path)) == b"guide text"
