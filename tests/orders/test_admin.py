from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent
from orders.models import EventDelivery
from tests.orders.conftest import buy, fund, reserve

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(staff):
    client = Client()
    client.force_login(staff)
    return client


def test_order_admin_when_searching_by_id_or_email_then_found(admin_client_, customer, customer_api, product):
    fund(customer, 5000)
    order_id = buy(customer_api, product.pk).json()["id"]

    by_id = admin_client_.get("/admin/orders/order/", {"q": order_id})
    by_email = admin_client_.get("/admin/orders/order/", {"q": customer.email})
    by_other = admin_client_.get("/admin/orders/order/", {"q": "nobody@example.test"})

    assert by_id.status_code == 200
    assert order_id in by_id.content.decode()
    assert order_id in by_email.content.decode()
    assert order_id not in by_other.content.decode()
    detail = admin_client_.get(f"/admin/orders/order/{order_id}/change/")
    assert detail.status_code == 200


def test_order_admin_when_filtering_by_status_then_only_that_status(admin_client_, customer, customer_api, product):
    fund(customer, 5000)
    paid = buy(customer_api, product.pk).json()["id"]
    pending = reserve(customer, product).pk

    page = admin_client_.get("/admin/orders/order/", {"status__exact": "pending"}).content.decode()

    assert pending in page
    assert paid not in page


def test_delivery_admin_when_redeliver_then_sent_again_and_audited(
    admin_client_, staff, customer, customer_api, merchant_api, product, receiver, django_capture_on_commit_callbacks
):
    merchant_api.post("/api/v1/merchant/webhooks", {"url": receiver.url}, format="json")
    fund(customer, 5000)
    with django_capture_on_commit_callbacks(execute=True):
        buy(customer_api, product.pk)
    delivery = EventDelivery.objects.get()
    assert delivery.status == "succeeded"
    assert len(receiver.requests) == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            "/admin/orders/eventdelivery/", {"action": "redeliver", "_selected_action": [delivery.pk]}
        )

    assert response.status_code == 302
    assert len(receiver.requests) == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert AuditEvent.objects.filter(action="order_event.redeliver", object_id=delivery.pk, actor=staff).exists()
    page = admin_client_.get(f"/admin/orders/eventdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
