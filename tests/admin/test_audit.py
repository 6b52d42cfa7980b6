"""The audit trail (invariant 9): each money action and each change of staff rights is recorded with the
actor, the address, the request id and the reason; so are the one-statement purchase and bulk admin actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts.models import User
from audit.models import (
    DisputeEvent,
    OrderEvent,
    PaymentEvent,
    ProductEvent,
    RefundEvent,
    StripeEventChange,
    UserEvent,
    UserGroupEvent,
    WithdrawalEvent,
)
from payments.models import StripeEvent, StripeEventStatus
from payments.services.disputes import dispute_open
from tests.admin.conftest import paid_wallet_order, payment_of, pending_withdrawal
from tests.backoffice.conftest import user_in_role
from tests.factories import ProductFactory

RoleClient = Callable[[str], tuple[User, Client]]
PROXY: dict[str, Any] = {
    "REMOTE_ADDR": "10.0.0.9",
    "HTTP_X_FORWARDED_FOR": "203.0.113.7",
    "HTTP_X_REQUEST_ID": "req_audit_test_1",
}


def _context(event: Any) -> dict[str, Any]:
    assert event.pgh_context_id is not None, "the change carries no context"
    return dict(event.pgh_context.metadata)


def _assert_named(event: Any, actor: User, reason: str, address: str = "203.0.113.7") -> None:
    context = _context(event)
    assert context["user"] == actor.pk
    assert context["address"] == address
    assert context["request_id"] == "req_audit_test_1"
    assert context["reason"] == reason


def _action(client: Client, name: str, action: str, pk: str, reason: str) -> None:
    client.post(reverse(f"admin:{name}_changelist"),
                {"action": action, ACTION_CHECKBOX_NAME: [pk], "apply": "1", "reason": reason}, **PROXY)  # fmt: skip


def test_refund_when_made_in_admin_then_recorded_with_actor_address_request_and_reason(
    role_client: RoleClient, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    order = paid_wallet_order(price=4000)
    support, client = role_client("support")
    url = reverse("admin:payments_payment_refund", args=[payment_of(order).pk])
    response = client.post(url, {"amount": 1500, "reason": "damaged download"}, **PROXY)
    assert response.status_code == 302
    created = RefundEvent.objects.get(pgh_label="insert")
    assert created.amount == 1500
    _assert_named(created, support, "damaged download")
    paid = PaymentEvent.objects.filter(pgh_obj_id=payment_of(order).pk, pgh_label="update").latest("pgh_id")
    assert paid.amount_refunded == 1500
    _assert_named(paid, support, "damaged download")
    page = client.get(reverse("admin:payments_refund_change", args=[created.pgh_obj_id])).content.decode()
    assert "damaged download" in page and support.email in page and "203.0.113.7" in page


def test_withdrawal_decisions_when_made_then_each_recorded_with_reason(role_client: RoleClient, settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    paid, rejected = pending_withdrawal(2000), pending_withdrawal(3000)
    finance, client = role_client("finance")
    _action(client, "wallets_withdrawal", "approve_withdrawals", paid.pk, "payout verified")
    _action(client, "wallets_withdrawal", "reject_withdrawals", rejected.pk, "account under review")
    approve = WithdrawalEvent.objects.filter(pgh_obj_id=paid.pk, pgh_label="update").latest("pgh_id")
    assert approve.status == "paid"
    _assert_named(approve, finance, "payout verified")
    reject = WithdrawalEvent.objects.filter(pgh_obj_id=rejected.pk, pgh_label="update").latest("pgh_id")
    assert reject.status == "rejected"
    _assert_named(reject, finance, "account under review")


def test_dispute_and_replay_when_done_then_recorded_with_reason(role_client: RoleClient, settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    order = paid_wallet_order(price=2500)
    dispute = dispute_open(payment_id=payment_of(order).pk, stripe_dispute_id="dp_audit", amount=2500)
    event = StripeEvent.objects.create(id="evt_audit", type="customer.created", status=StripeEventStatus.FAILED)
    finance, client = role_client("finance")
    _action(client, "payments_dispute", "resolve_won", dispute.pk, "evidence accepted")
    _action(client, "payments_stripeevent", "replay", event.pk, "handler fixed")
    _assert_named(DisputeEvent.objects.filter(pgh_obj_id=dispute.pk, pgh_label="update").latest("pgh_id"),
                  finance, "evidence accepted")  # fmt: skip
    replayed = StripeEventChange.objects.get(pgh_obj_id=event.pk)
    assert replayed.status == StripeEventStatus.IGNORED
    _assert_named(replayed, finance, "handler fixed")


def test_staff_rights_when_changed_in_admin_then_recorded_and_a_reason_required(
    role_client: RoleClient, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    admin_user, client = role_client("superuser")
    target = user_in_role("customer")
    finance = Group.objects.get(name="Finance")
    url = reverse("admin:accounts_user_change", args=[target.pk])
    form = {"email": target.email, "role": target.role, "first_name": "", "last_name": "", "is_active": "on",
            "is_staff": "on", "groups": [finance.pk], "created_at_0": "", "change_reason": ""}  # fmt: skip
    refused = client.post(url, form, **PROXY)
    assert refused.status_code == 200 and "A change of rights needs a reason." in refused.content.decode()
    target.refresh_from_db()
    assert not target.is_staff and not UserGroupEvent.objects.filter(user_id=target.pk).exists()

    response = client.post(url, {**form, "change_reason": "joins the finance team"}, **PROXY)
    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert target.is_staff and target.groups.filter(pk=finance.pk).exists()
    rights = UserEvent.objects.filter(pgh_obj_id=target.pk, pgh_label="update").latest("pgh_id")
    assert rights.is_staff is True
    _assert_named(rights, admin_user, "joins the finance team")
    joined = UserGroupEvent.objects.get(user_id=target.pk, pgh_label="group.add")
    assert joined.group_id == finance.pk
    _assert_named(joined, admin_user, "joins the finance team")


def test_purchase_when_one_statement_path_then_order_and_payment_recorded_with_buyer_and_address(db: None) -> None:
    order = paid_wallet_order(price=1800)
    for event_model in (OrderEvent, PaymentEvent):
        created = event_model.objects.get(pgh_label="insert", pgh_obj_id=order.pk if event_model is OrderEvent
                                          else payment_of(order).pk)  # fmt: skip
        context = _context(created)
        assert context["user"] == order.buyer.pk
        assert context["address"] == "127.0.0.1"
        assert context["url"] == "/api/v1/orders"
        assert context["request_id"].startswith("req_")
    stock = ProductEvent.objects.filter(pgh_obj_id=order.product_id, pgh_label="update").latest("pgh_id")
    assert stock.stock == 9
    assert _context(stock)["user"] == order.buyer.pk


def test_bulk_admin_action_when_products_deactivated_then_each_recorded(role_client: RoleClient) -> None:
    products = [ProductFactory.create(), ProductFactory.create()]
    admin_user, client = role_client("superuser")
    client.post(reverse("admin:catalog_product_changelist"),
                {"action": "deactivate", ACTION_CHECKBOX_NAME: [p.pk for p in products]})  # fmt: skip
    for product in products:
        change = ProductEvent.objects.filter(pgh_obj_id=product.pk, pgh_label="update").latest("pgh_id")
        assert change.is_active is False
        context = _context(change)
        assert context["user"] == admin_user.pk and context["reason"] == "admin bulk action: deactivated"
        assert context["address"] == "127.0.0.1"


def test_audit_search_when_by_reason_then_staff_find_the_change(role_client: RoleClient) -> None:
    withdrawal = pending_withdrawal(2200)
    _, finance_client = role_client("finance")
    _action(finance_client, "wallets_withdrawal", "approve_withdrawals", withdrawal.pk, "quarterly payout 42")
    found = finance_client.get(reverse("admin:audit_withdrawalevent_changelist"), {"q": "quarterly payout 42"})
    assert found.status_code == 200
    assert withdrawal.pk in found.content.decode()
