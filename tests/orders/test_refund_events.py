from __future__ import annotations

import pytest

from orders.models import Order, OrderEvent
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db


def test_refund_when_partial_then_full_then_order_follows_with_events(customer, customer_api, merchant_api, product):
    fund(customer, 5000)
    order_id = buy(customer_api, product.pk).json()["id"]

    first = merchant_api.post("/api/v1/refunds", {"order": order_id, "amount": 400}, format="json")
    assert first.status_code == 201, first.content
    assert Order.objects.get(pk=order_id).status == "partially_refunded"

    rest = merchant_api.post("/api/v1/refunds", {"order": order_id}, format="json")
    assert rest.status_code == 201, rest.content
    assert Order.objects.get(pk=order_id).status == "refunded"

    events = OrderEvent.objects.filter(order_id=order_id, type__endswith="refunded").order_by("id")
    assert [e.type for e in events] == ["order.partially_refunded", "order.refunded"]  # contract section 5
    assert [e.payload["data"]["object"]["amount_refunded"] for e in events] == [400, 1000]
    assert [e.payload["data"]["object"]["status"] for e in events] == ["partially_refunded", "refunded"]
    # The buyer still sees what they bought.
    assert customer_api.get(f"/api/v1/orders/{order_id}").json()["status"] == "refunded"
