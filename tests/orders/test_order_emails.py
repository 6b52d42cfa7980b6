"""The buyer's emails (receipt when paid, notice when refunded), revocation by a full refund or a lost dispute,
and what never appears in a message or a log line."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, cast

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from catalog.models import CodeStatus, ProductCode
from catalog.services import product_codes_add, product_create, product_file_put
from orders import tasks
from orders.models import Goods, GoodsStatus, Order
from tests.conftest import client_for
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db

CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _card_numbers(text: str) -> list[str]:
    """Runs of 13 to 19 digits (spaces or dashes between) that pass the Luhn check: what a card number is."""
    found = []
    for match in CARD_NUMBER.finditer(text):
        digits = [int(c) for c in match.group() if c.isdigit()]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            found.append(match.group())
    return found


def _logged_text(records: list[logging.LogRecord]) -> list[str]:
    """Each record's message and every string it carries (the JSON log line's extra fields)."""
    return [" ".join([r.getMessage(), *(v for v in vars(r).values() if isinstance(v, str))]) for r in records]


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _key_product(merchant: Any) -> Any:
    return product_create(merchant=merchant, name="Editor licence", price=1250, delivery="license_key")


def test_receipt_when_the_task_runs_twice_then_one_message_with_order_amount_merchant_and_key(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    fund(customer, 10_000)
    order = buy(customer_api, _key_product(merchant).pk).json()
    key = order["goods"][0]["value"]

    assert tasks.order_receipt_send(order["id"]) is True
    assert tasks.order_receipt_send(order["id"]) is False

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [customer.email]
    assert message.subject == f"Your receipt for Editor licence ({order['id']})"
    for part in _parts(message):
        assert order["id"] in part and "12.50 USD" in part and key in part
        assert merchant.get_full_name() in part


def test_receipt_when_a_file_was_bought_then_the_mail_carries_a_working_link_of_the_buyer(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    product = product_create(merchant=merchant, name="Guide", price=1000, delivery="file")
    product_file_put(merchant=merchant, product_id=product.pk, upload=SimpleUploadedFile("g.txt", b"guide text"))
    fund(customer, 10_000)
    order = buy(customer_api, product.pk).json()

    tasks.order_receipt_send(order["id"])

    links = re.findall(r"http://127\.0\.0\.1:8000(/api/v1/downloads/[\w-]+)", str(mail.outbox[0].body))
    assert len(links) == 1
    response = APIClient().get(links[0])
    assert response.status_code == 200 and b"".join(cast(StreamingHttpResponse, response)) == b"guide text"


def test_full_refund_when_it_settles_then_goods_revoked_notice_sent_once_and_key_check_says_revoked(
    merchant: Any, customer: Any, customer_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    fund(customer, 10_000)
    order = buy(customer_api, _key_product(merchant).pk).json()
    key = order["goods"][0]["value"]

    with django_capture_on_commit_callbacks(execute=True):
        refund = client_for(merchant).post("/api/v1/refunds", {"order": order["id"]}, format="json")
    assert refund.status_code == 201, refund.json()
    tasks.order_refund_notice_send(order["id"], 1250)  # a retried task

    notices = [m for m in mail.outbox if m.subject.startswith("Refund")]
    assert len(notices) == 1
    assert "12.50 USD of 12.50 USD" in notices[0].body and "no longer valid" in notices[0].body
    assert APIClient().get(f"/api/v1/licenses/{key}").json() == {
        "valid": False,
        "status": "revoked",
        "product": order["product"],
    }
    library = customer_api.get("/api/v1/library").json()["results"]
    assert [item["status"] for item in library] == ["revoked"]


def test_partial_refund_when_it_settles_then_the_goods_stay_active(
    merchant: Any, customer: Any, customer_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    product = product_create(merchant=merchant, name="Pool", price=1000, delivery="codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["P-1", "P-2"])
    fund(customer, 10_000)
    order = buy(customer_api, product.pk, quantity=2).json()

    with django_capture_on_commit_callbacks(execute=True):
        refund = client_for(merchant).post("/api/v1/refunds", {"order": order["id"], "amount": 500}, format="json")
    assert refund.status_code == 201, refund.json()

    assert set(Goods.objects.filter(order_id=order["id"]).values_list("status", flat=True)) == {GoodsStatus.ACTIVE}
    assert set(ProductCode.objects.filter(product=product).values_list("status", flat=True)) == {CodeStatus.SOLD}
    notice = next(m for m in mail.outbox if m.subject.startswith("Refund"))
    assert "5.00 USD of 20.00 USD" in notice.body and "no longer valid" not in notice.body


def test_lost_dispute_when_resolved_then_the_orders_codes_are_revoked(
    merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    from payments.services.disputes import dispute_open, dispute_resolve

    product = product_create(merchant=merchant, name="Pool", price=1000, delivery="codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["D-1"])
    fund(customer, 10_000)
    order = buy(customer_api, product.pk).json()

    dispute = dispute_open(payment_id=order["payment"], stripe_dispute_id="dp_test_1", amount=1000)
    dispute_resolve(dispute_id=dispute.pk, outcome="lost", actor=None)

    assert ProductCode.objects.get(code="D-1").status == CodeStatus.REVOKED
    assert Goods.objects.get(order_id=order["id"]).status == GoodsStatus.REVOKED


def test_card_order_of_codes_when_paid_then_receipt_has_the_code_and_no_card_number_anywhere(
    fake_stripe: Any, merchant: Any, customer: Any, customer_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    product = product_create(merchant=merchant, name="Ticket", price=1000, delivery="codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["CARD-CODE-1"])
    fake_stripe.attach_card(customer)
    caplog.set_level(logging.DEBUG)

    response = buy(customer_api, product.pk, payment_method="card")
    assert response.status_code == 201, response.json()
    order = response.json()
    assert [g["value"] for g in order["goods"]] == ["CARD-CODE-1"]
    tasks.order_receipt_send(order["id"])

    receipt = mail.outbox[-1]
    assert "CARD-CODE-1" in receipt.body
    texts = [str(m.subject) + "".join(_parts(m)) for m in mail.outbox]
    texts += _logged_text(caplog.records)
    assert _card_numbers("card 4242 4242 4242 4242, ts 1764654802048") == ["4242 4242 4242 4242"]  # it can fail
    assert not [t for t in texts if _card_numbers(t)]
    assert Order.objects.get(pk=order["id"]).status == "paid"


def test_receipt_and_logs_when_a_download_link_is_made_then_its_token_is_in_no_log_line(
    merchant: Any, customer: Any, customer_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    product = product_create(merchant=merchant, name="Guide", price=1000, delivery="file")
    product_file_put(merchant=merchant, product_id=product.pk, upload=SimpleUploadedFile("g.txt", b"guide"))
    fund(customer, 10_000)
    caplog.set_level(logging.DEBUG)
    order = buy(customer_api, product.pk).json()
    tasks.order_receipt_send(order["id"])
    fresh = customer_api.post(f"/api/v1/library/{order['goods'][0]['id']}/link").json()
    tokens = [order["goods"][0]["url"].rsplit("/", 1)[1], fresh["url"].rsplit("/", 1)[1]]
    tokens += re.findall(r"/api/v1/downloads/([\w-]+)", str(mail.outbox[0].body))

    logged = " ".join(_logged_text(caplog.records))
    assert len(tokens) == 3 and not [token for token in tokens if token in logged]
    stored = " ".join(str(v) for v in Goods.objects.filter(order_id=order["id"]).values_list())
    assert not [token for token in tokens if token in stored]  # only their sha256 is kept


def _parts(message: EmailMessage) -> list[str]:
    """The text part and the HTML part of a sent message."""
    assert isinstance(message, EmailMultiAlternatives)
    html = message.alternatives[0][0]
    assert isinstance(html, str)
    return [str(message.body), html]
