"""Staff refunds: Support up to SUPPORT_REFUND_LIMIT, and four eyes at FOUR_EYES_THRESHOLD."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, User
from orders.models import Order
from payments.models import Refund
from tests.conftest import assert_error, client_for
from tests.factories import ProductFactory
from tests.orders.conftest import buy, fund
from tests.wallets.conftest import verify
from wallets.models import Account

PRICE = 150_000


@pytest.fixture
def paid_order(customer: User, merchant: User) -> Order:
    product = ProductFactory.create(merchant=merchant, price=PRICE, stock=None, fulfillment="thanks")
    fund(customer, PRICE)
    response = buy(client_for(customer), product.pk)
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["id"])


def _refund(user: User, order: Order, amount: int | None = None):
    body: dict[str, object] = {"order": order.pk, "reason": "customer asked"}
    if amount is not None:
        body["amount"] = amount
    return client_for(user).post("/api/v1/refunds", body, format="json")


def _decide(user: User, refund_id: str, decision: str = "approve", reason: str = "checked"):
    return client_for(user).post(f"/api/v1/staff/refunds/{refund_id}/{decision}", {"reason": reason}, format="json")


def _buyer_balance(order: Order) -> int:
    return Account.objects.get(owner_id=order.buyer_id, kind="customer").balance


def test_support_refund_when_within_limit_then_done(paid_order, support):
    response = _refund(support, paid_order, 10_000)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "succeeded"
    assert _buyer_balance(paid_order) == 10_000


def test_support_refund_when_above_limit_then_refused_with_clear_message(paid_order, support):
    error = assert_error(_refund(support, paid_order, 10_001), 403, "permission_denied", "amount")
    assert "above the Support limit of 10000" in error["message"] and "Finance" in error["message"]
    assert not Refund.objects.exists() and _buyer_balance(paid_order) == 0


def test_support_refund_when_amount_left_out_and_rest_above_limit_then_refused(paid_order, support):
    assert_error(_refund(support, paid_order), 403, "permission_denied", "amount")


def test_finance_refund_when_below_threshold_then_runs_at_once(paid_order, finance):
    response = _refund(finance, paid_order, 99_999)
    assert response.json()["status"] == "succeeded" and _buyer_balance(paid_order) == 99_999


def test_finance_refund_when_at_threshold_then_pending_approval_and_nothing_moves(paid_order, finance):
    response = _refund(finance, paid_order, 100_000)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending_approval"
    assert _buyer_balance(paid_order) == 0
    paid_order.refresh_from_db()
    assert paid_order.status == "paid" and paid_order.payment.amount_refunded == 0
    assert verify()[0] == 0


def test_pending_refund_when_requester_approves_then_four_eyes_required(paid_order, finance):
    refund_id = _refund(finance, paid_order, 100_000).json()["id"]
    assert_error(_decide(finance, refund_id), 403, "four_eyes_required")
    assert Refund.objects.get(pk=refund_id).status == "pending_approval" and _buyer_balance(paid_order) == 0


def test_pending_refund_when_second_finance_user_approves_then_it_runs(paid_order, finance, finance2):
    refund_id = _refund(finance, paid_order).json()["id"]
    response = _decide(finance2, refund_id)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "succeeded"
    assert _buyer_balance(paid_order) == PRICE
    paid_order.refresh_from_db()
    assert paid_order.status == "refunded"
    refund = Refund.objects.get(pk=refund_id)
    assert (refund.requested_by_id, refund.approved_by_id) == (finance.pk, finance2.pk)
    assert AuditEvent.objects.filter(object_id=refund_id, action="refund.approve", actor=finance2).exists()
    assert verify()[0] == 0


def test_pending_refund_when_rejected_then_canceled_and_nothing_moved(paid_order, finance, finance2):
    refund_id = _refund(finance, paid_order).json()["id"]
    response = _decide(finance2, refund_id, "reject", "duplicate request")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert_error(_decide(finance2, refund_id), 409, "invalid_status")
    assert _buyer_balance(paid_order) == 0
    assert verify()[0] == 0


def test_pending_refund_when_support_or_no_reason_then_refused(paid_order, finance, finance2, support):
    refund_id = _refund(finance, paid_order).json()["id"]
    assert_error(_decide(support, refund_id), 403, "permission_denied")
    assert_error(_decide(finance2, refund_id, reason=" "), 400, "validation_error", "reason")
    assert Refund.objects.get(pk=refund_id).status == "pending_approval"


def test_merchant_refund_when_at_threshold_then_runs_without_second_approval(paid_order, merchant):
    response = _refund(merchant, paid_order, 100_000)
    assert response.status_code == 201 and response.json()["status"] == "succeeded"
