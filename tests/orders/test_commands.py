from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import EventDelivery, Order, OrderEvent
from tests.orders.conftest import buy, fund, reserve

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("orders", *args, stdout=out)
    return out.getvalue()


def test_orders_expire_command_when_reservation_ran_out_then_canceled(customer, product):
    order = reserve(customer, product, quantity=2)
    assert _run("expire").strip() == "0 expired orders canceled"
    Order.objects.filter(pk=order.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))

    assert _run("expire").strip() == "1 expired orders canceled"

    assert Order.objects.get(pk=order.pk).status == "canceled"
    product.refresh_from_db()
    assert product.stock == 5


def test_orders_deliveries_and_redeliver_commands_when_receiver_back_then_delivered(
    customer, customer_api, merchant_api, product, receiver
):
    merchant_api.post("/api/v1/merchant/webhooks", {"url": receiver.url}, format="json")
    fund(customer, 5000)
    receiver.statuses = [503]
    buy(customer_api, product.pk)  # on-commit fan-out does not run here: the sweep finds the event
    OrderEvent.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    _run("deliveries")
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("pending", 503)

    with pytest.raises(CommandError):
        _run("redeliver", "dlv_unknown")
    # The receiver is back: one redelivery now, whatever the backoff said.
    assert _run("redeliver", delivery.pk).strip() == f"{delivery.pk}: succeeded after 2 attempts"
    assert len(receiver.requests) == 2
