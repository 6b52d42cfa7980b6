"""A lost dispute takes the goods back through the dispute outcome path (payments' ``dispute_lost`` hook →
the same ``goods_revoke`` a full refund uses), once, whatever the order of Stripe's events; a won or
warning-closed dispute takes nothing back."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from catalog.models import CodeStatus, ProductCode
from catalog.services import product_codes_add, product_create, product_file_put
from orders.models import Goods, GoodsStatus, Order
from payments.models import Dispute, DisputeStatus
from payments.services.disputes import dispute_resolve
from tests.backoffice.conftest import user_in_role
from tests.conftest import client_for
from tests.orders.conftest import buy
from tests.payments.test_disputes_admin import _dispute_object
from tests.payments.test_webhooks import deliver, event_body, sign
from tests.wallets.conftest import verify

pytestmark = [pytest.mark.django_db, pytest.mark.stripe]


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _card_buy(fake_stripe: Any, buyer: Any, product: Any) -> dict[str, Any]:
    fake_stripe.attach_card(buyer)
    response = buy(client_for(buyer), product.pk, payment_method="card")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "paid"
    body: dict[str, Any] = response.json()
    return body


def _goods_of_each_kind(fake_stripe: Any, merchant: Any, buyer: Any) -> dict[str, dict[str, Any]]:
    """Three card orders of the buyer: a code, a licence key, a file (each with its goods item)."""
    codes = product_create(merchant=merchant, name="Ticket", price=1000, delivery="codes")
    product_codes_add(merchant=merchant, product_id=codes.pk, codes=["TICKET-1", "TICKET-2"])
    key = product_create(merchant=merchant, name="Editor", price=1000, delivery="license_key")
    guide = product_create(merchant=merchant, name="Guide", price=1000, delivery="file")
    product_file_put(merchant=merchant, product_id=guide.pk, upload=SimpleUploadedFile("guide.txt", b"the guide"))
    return {kind: _card_buy(fake_stripe, buyer, product) for kind, product in (("code", codes), ("key", key),
                                                                                ("file", guide))}  # fmt: skip


def _send(capture: Any, event_type: str, obj: dict[str, Any]) -> None:
    with capture(execute=True):
        response = deliver(body := event_body(event_type, obj), sign(body))
    assert response.status_code == 200, response.content


def _dispute(order_id: str, status: str, dispute_id: str | None = None) -> dict[str, Any]:
    obj = _dispute_object(Order.objects.get(pk=order_id), status=status)
    if dispute_id is not None:
        obj["id"] = dispute_id
    return obj


def _get(url: str) -> Any:
    """GET one of the platform's own absolute URLs (``PUBLIC_URL`` …) with an anonymous client."""
    return APIClient().get(urlsplit(url).path)


def _item(order: dict[str, Any]) -> Goods:
    return Goods.objects.get(order_id=order["id"])


def test_dispute_when_lost_then_code_revoked_link_410_and_key_check_revoked(
    fake_stripe: Any, merchant: Any, customer: Any, customer_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    orders = _goods_of_each_kind(fake_stripe, merchant, customer)
    link = orders["file"]["goods"][0]["url"]
    key = orders["key"]["goods"][0]["value"]
    assert _get(link).status_code == 200  # the link works before

    for order in orders.values():
        opened = _dispute(order["id"], "needs_response")
        _send(django_capture_on_commit_callbacks, "charge.dispute.created", opened)
        _send(django_capture_on_commit_callbacks, "charge.dispute.closed", {**opened, "status": "lost"})

    assert set(Dispute.objects.values_list("status", flat=True)) == {DisputeStatus.LOST}
    code = ProductCode.objects.get(code="TICKET-1")
    assert (code.status, code.order_id) == (CodeStatus.REVOKED, orders["code"]["id"])
    assert ProductCode.objects.get(code="TICKET-2").status == CodeStatus.AVAILABLE
    gone = _get(link)
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "goods_revoked")
    assert APIClient().get(f"/api/v1/licenses/{key}").json() == {
        "valid": False,
        "status": "revoked",
        "product": orders["key"]["product"],
    }
    library = customer_api.get("/api/v1/library").json()["results"]
    assert {(i["status"], i["url"]) for i in library} == {("revoked", None)}
    assert verify()[0] == 0


def test_dispute_when_stripe_sends_closed_first_then_created_and_updated_then_revoked_once(
    fake_stripe: Any, merchant: Any, customer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    order = _goods_of_each_kind(fake_stripe, merchant, customer)["code"]
    lost = _dispute(order["id"], "lost")

    _send(django_capture_on_commit_callbacks, "charge.dispute.closed", lost)
    item = _item(order)
    assert item.status == GoodsStatus.REVOKED and item.revoked_at is not None
    first_revoked_at = item.revoked_at

    _send(django_capture_on_commit_callbacks, "charge.dispute.created", {**lost, "status": "needs_response"})
    _send(django_capture_on_commit_callbacks, "charge.dispute.updated", lost)
    _send(django_capture_on_commit_callbacks, "charge.dispute.closed", lost)

    assert Dispute.objects.get().status == DisputeStatus.LOST
    assert _item(order).revoked_at == first_revoked_at  # revoked by the first outcome only
    assert ProductCode.objects.get(code="TICKET-1").status == CodeStatus.REVOKED
    assert verify()[0] == 0


def test_dispute_when_lost_after_a_full_refund_then_the_goods_stay_revoked_from_the_refund(
    fake_stripe: Any, merchant: Any, customer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    order = _goods_of_each_kind(fake_stripe, merchant, customer)["key"]
    with django_capture_on_commit_callbacks(execute=True):
        refund = client_for(merchant).post("/api/v1/refunds", {"order": order["id"]}, format="json")
    assert refund.status_code == 201, refund.json()
    refunded_at = _item(order).revoked_at
    assert refunded_at is not None

    _send(django_capture_on_commit_callbacks, "charge.dispute.closed", _dispute(order["id"], "lost"))

    assert _item(order).status == GoodsStatus.REVOKED
    assert _item(order).revoked_at == refunded_at


@pytest.mark.parametrize("stripe_status", ["won", "warning_closed"])
def test_dispute_when_closed_without_loss_then_nothing_revoked(
    fake_stripe: Any,
    merchant: Any,
    customer: Any,
    customer_api: APIClient,
    django_capture_on_commit_callbacks: Any,
    stripe_status: str,
) -> None:
    orders = _goods_of_each_kind(fake_stripe, merchant, customer)
    for order in orders.values():
        opened = _dispute(order["id"], "needs_response")
        _send(django_capture_on_commit_callbacks, "charge.dispute.created", opened)
        _send(django_capture_on_commit_callbacks, "charge.dispute.closed", {**opened, "status": stripe_status})

    assert set(Dispute.objects.values_list("status", flat=True)) == {stripe_status}
    assert set(Goods.objects.values_list("status", flat=True)) == {GoodsStatus.ACTIVE}
    assert ProductCode.objects.get(code="TICKET-1").status == CodeStatus.SOLD
    key = orders["key"]["goods"][0]["value"]
    assert APIClient().get(f"/api/v1/licenses/{key}").json()["status"] == "active"
    link = customer_api.get("/api/v1/library").json()["results"][0]
    assert link["type"] == "download" and _get(link["url"]).status_code == 200
    assert verify()[0] == 0


def test_dispute_when_staff_resolve_it_lost_then_the_goods_are_revoked_too(
    fake_stripe: Any, merchant: Any, customer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    order = _goods_of_each_kind(fake_stripe, merchant, customer)["file"]
    _send(django_capture_on_commit_callbacks, "charge.dispute.created", _dispute(order["id"], "needs_response"))
    dispute = Dispute.objects.get()

    dispute_resolve(dispute_id=dispute.pk, outcome=DisputeStatus.LOST, actor=user_in_role("finance"))

    assert _item(order).status == GoodsStatus.REVOKED
    gone = _get(order["goods"][0]["url"])
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "goods_revoked")
