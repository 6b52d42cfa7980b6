"""The admin's column of the permission matrix: every money action x every role, through the admin itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from djstripe import models as djstripe_models

from accounts.models import User
from payments.models import DisputeStatus, Refund, StripeEvent, StripeEventStatus
from payments.services.disputes import dispute_open
from tests.admin.conftest import paid_wallet_order, payment_of, pending_withdrawal
from tests.backoffice.conftest import ROLES
from wallets.models import Withdrawal, WithdrawalStatus

RoleClient = Callable[[str], tuple[User, Client]]
STAFF_WHO_REFUND = {"support", "finance", "superuser"}
FINANCE = {"finance", "superuser"}


def _action(client: Client, url: str, action: str, pk: str, reason: str = "checked with the customer") -> None:
    client.post(url, {"action": action, ACTION_CHECKBOX_NAME: [pk], "apply": "1", "reason": reason})


@pytest.mark.parametrize("role", ROLES)
def test_refund_page_when_role_then_only_support_finance_superuser_refund(role: str, role_client: RoleClient) -> None:
    order = paid_wallet_order(price=2000)
    _, client = role_client(role)
    url = reverse("admin:payments_payment_refund", args=[payment_of(order).pk])
    response = client.post(url, {"amount": 500, "reason": "customer asked"})
    refunded = Refund.objects.filter(payment=payment_of(order)).exists()
    assert refunded == (role in STAFF_WHO_REFUND)
    if role in ("merchant", "customer"):
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    elif role == "no_group":
        assert response.status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_withdrawal_approve_when_role_then_only_finance_pays(role: str, role_client: RoleClient) -> None:
    withdrawal = pending_withdrawal(2000)
    _, client = role_client(role)
    _action(client, reverse("admin:wallets_withdrawal_changelist"), "approve_withdrawals", withdrawal.pk)
    withdrawal.refresh_from_db()
    assert (withdrawal.status == WithdrawalStatus.PAID) == (role in FINANCE)


@pytest.mark.parametrize("role", ROLES)
def test_dispute_resolve_when_role_then_only_finance_resolves(role: str, role_client: RoleClient) -> None:
    order = paid_wallet_order(price=3000)
    dispute = dispute_open(payment_id=payment_of(order).pk, stripe_dispute_id=f"dp_{role}", amount=3000)
    _, client = role_client(role)
    _action(client, reverse("admin:payments_dispute_changelist"), "resolve_won", dispute.pk)
    dispute.refresh_from_db()
    assert (dispute.status == DisputeStatus.WON) == (role in FINANCE)


@pytest.mark.parametrize("role", ROLES)
def test_event_replay_when_role_then_only_finance_replays(role: str, role_client: RoleClient) -> None:
    event = StripeEvent.objects.create(id=f"evt_{role}", type="customer.created", status=StripeEventStatus.FAILED)
    _, client = role_client(role)
    _action(client, reverse("admin:payments_stripeevent_changelist"), "replay", event.pk)
    event.refresh_from_db()
    assert (event.status == StripeEventStatus.IGNORED) == (role in FINANCE)


def test_staff_in_no_group_when_home_then_sees_no_money(role_client: RoleClient) -> None:
    _, client = role_client("no_group")
    home = client.get(reverse("admin:index"))
    assert home.status_code == 200
    body = home.content.decode()
    assert "Nothing about money is yours to see" in body
    for name in ("payments_payment", "payments_refund", "wallets_withdrawal", "wallets_entry", "orders_order"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 403
    assert "Withdrawals awaiting a decision" not in body


def test_bulk_money_action_when_no_reason_then_confirmation_page_and_nothing_moves(role_client: RoleClient) -> None:
    withdrawal = pending_withdrawal(2500)
    _, client = role_client("finance")
    url = reverse("admin:wallets_withdrawal_changelist")
    first = client.post(url, {"action": "approve_withdrawals", ACTION_CHECKBOX_NAME: [withdrawal.pk]})
    assert first.status_code == 200
    page = first.content.decode()
    assert "confirm-money-action" in page and "2500" in page and 'name="reason"' in page
    blank = client.post(url, {"action": "approve_withdrawals", ACTION_CHECKBOX_NAME: [withdrawal.pk], "apply": "1",
                              "reason": "  "})  # fmt: skip
    assert blank.status_code == 200 and "confirm-money-action" in blank.content.decode()
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.PENDING


def test_home_when_finance_then_each_work_queue_has_its_count_and_link(role_client: RoleClient) -> None:
    pending_withdrawal(1500)
    pending_withdrawal(1600)
    StripeEvent.objects.create(id="evt_failed_1", type="charge.refunded", status=StripeEventStatus.FAILED)
    _, client = role_client("finance")
    body = client.get(reverse("admin:index")).content.decode()
    queues = ("Withdrawals awaiting a decision", "Refunds awaiting approval", "Open disputes",
              "Stripe events that failed", "Payments stuck in processing", "Reconciliation mismatches")  # fmt: skip
    for title in queues:
        assert title in body
    withdrawals = reverse("admin:wallets_withdrawal_changelist")
    assert f'href="{withdrawals}?status__in=pending,awaiting_second_approval">2<' in body
    listed = client.get(f"{withdrawals}?status__in=pending,awaiting_second_approval")
    assert listed.status_code == 200 and Withdrawal.objects.count() == 2


def test_four_eyes_when_same_finance_user_twice_then_not_paid_and_second_user_pays(role_client: RoleClient) -> None:
    withdrawal = pending_withdrawal(settings.FOUR_EYES_THRESHOLD)
    _, first = role_client("finance")
    _, second = role_client("finance")
    url = reverse("admin:wallets_withdrawal_changelist")
    _action(first, url, "approve_withdrawals", withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.AWAITING_SECOND_APPROVAL
    _action(first, url, "approve_withdrawals", withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.AWAITING_SECOND_APPROVAL
    _action(second, url, "approve_withdrawals", withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.PAID


def test_money_records_when_superuser_then_read_only_and_unneeded_stripe_mirrors_hidden(
    role_client: RoleClient,
) -> None:
    order = paid_wallet_order(price=1200)
    _, client = role_client("superuser")
    models = ("payments_payment", "payments_refund", "payments_dispute", "wallets_entry", "wallets_posting",
              "wallets_account", "orders_order", "djstripe_charge", "djstripe_event", "djstripe_customer")  # fmt: skip
    for name in models:
        assert client.get(reverse(f"admin:{name}_add")).status_code == 403, name
    page = client.get(reverse("admin:payments_payment_change", args=[payment_of(order).pk])).content.decode()
    assert 'name="amount"' not in page and 'name="status"' not in page
    kept = {djstripe_models.Event, djstripe_models.Customer, djstripe_models.PaymentIntent, djstripe_models.Charge,
            djstripe_models.Refund, djstripe_models.Dispute}  # fmt: skip
    registered = {model for model in apps.get_app_config("djstripe").get_models() if admin.site.is_registered(model)}
    assert registered == kept
    assert not admin.site.is_registered(djstripe_models.Payout)
    search = client.get(reverse("admin:djstripe_customer_changelist"), {"q": "someone@example.test"})
    assert search.status_code == 200
