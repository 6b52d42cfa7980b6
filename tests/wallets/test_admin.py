from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent
from tests.backoffice.conftest import user_in_role
from tests.wallets.conftest import fund
from wallets.models import Account, Entry, Withdrawal
from wallets.withdrawals import withdrawal_request


@pytest.fixture
def admin_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def _pending(user, amount):
    return withdrawal_request(user=user, amount=amount)


def test_admin_approve_action_when_pending_then_paid_and_audited(customer):
    staff = user_in_role("finance")
    admin_client = Client()
    admin_client.force_login(staff)
    fund(customer, 5_000)
    withdrawal = _pending(customer, 2_000)
    approve = {"action": "approve_withdrawals", "_selected_action": [withdrawal.pk]}
    confirmation = admin_client.post("/admin/wallets/withdrawal/", approve)
    assert confirmation.status_code == 200 and b"confirm-money-action" in confirmation.content
    withdrawal.refresh_from_db()
    assert withdrawal.status == "pending"  # nothing moves before staff confirm with a reason
    response = admin_client.post(
        "/admin/wallets/withdrawal/", {**approve, "apply": "1", "reason": "payout checked"}, follow=True
    )
    assert response.status_code == 200
    withdrawal.refresh_from_db()
    assert withdrawal.status == "paid" and withdrawal.decided_by == staff
    assert AuditEvent.objects.filter(object_id=withdrawal.pk, action="withdrawal.approve", actor=staff).exists()
    assert Account.objects.get(owner=customer).held == 0
    detail = admin_client.get(f"/admin/wallets/withdrawal/{withdrawal.pk}/change/")
    assert detail.status_code == 200 and b"Paid" in detail.content
    again = admin_client.post(
        "/admin/wallets/withdrawal/", {**approve, "apply": "1", "reason": "payout checked"}, follow=True
    )
    assert b"0 withdrawal(s) approved; 1 not pending" in again.content
    assert Entry.objects.filter(reference=withdrawal.pk).count() == 2


def test_admin_reject_action_when_reason_given_then_released(admin_client, customer, staff):
    fund(customer, 5_000)
    withdrawal = _pending(customer, 2_000)
    form = admin_client.post(
        "/admin/wallets/withdrawal/", {"action": "reject_withdrawals", "_selected_action": [withdrawal.pk]}
    )
    assert form.status_code == 200 and b"reason" in form.content
    withdrawal.refresh_from_db()
    assert withdrawal.status == "pending"
    admin_client.post(
        "/admin/wallets/withdrawal/",
        {"action": "reject_withdrawals", "_selected_action": [withdrawal.pk], "apply": "1", "reason": "fraud check"},
    )
    withdrawal.refresh_from_db()
    assert withdrawal.status == "rejected" and withdrawal.reason == "fraud check"
    account = Account.objects.get(owner=customer)
    assert (account.balance, account.held) == (5_000, 0)


def test_admin_ledger_pages_when_staff_then_read_only(admin_client, customer):
    entry = fund(customer, 5_000)
    account = Account.objects.get(owner=customer)
    assert admin_client.get(f"/admin/wallets/account/?q={customer.email}").status_code == 200
    page = admin_client.get(f"/admin/wallets/entry/{entry.pk}/change/")
    assert page.status_code == 200 and account.pk.encode() in page.content
    assert admin_client.get("/admin/wallets/entry/add/").status_code == 403
    assert admin_client.get("/admin/wallets/posting/add/").status_code == 403
    assert admin_client.get("/admin/wallets/account/add/").status_code == 403
    admin_client.post(f"/admin/wallets/entry/{entry.pk}/delete/", {"post": "yes"})
    assert Entry.objects.filter(pk=entry.pk).exists()
    for path in ("posting", "deposit", "withdrawal", "account"):
        assert admin_client.get(f"/admin/wallets/{path}/").status_code == 200
    assert Withdrawal.objects.count() == 0
