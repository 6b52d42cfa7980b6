"""Four eyes on withdrawals: at the threshold one Finance user cannot pay alone, whatever the path; two can."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from accounts.models import AuditEvent, User
from config.errors import FourEyesRequired
from tests.conftest import assert_error, client_for
from tests.wallets.conftest import fund, verify
from wallets.models import Withdrawal
from wallets.withdrawals import withdrawal_approve, withdrawal_request

BIG = 100_000  # FOUR_EYES_THRESHOLD's default


@pytest.fixture
def big_withdrawal(customer: User) -> Withdrawal:
    fund(customer, 300_000)
    return withdrawal_request(user=customer, amount=BIG)


def _approve(user: User, withdrawal_id: str, reason: str = "checked the bank details"):
    return client_for(user).post(
        f"/api/v1/staff/withdrawals/{withdrawal_id}/approve", {"reason": reason}, format="json"
    )


def test_big_withdrawal_when_one_finance_approves_twice_by_api_then_four_eyes_required(big_withdrawal, finance):
    first = _approve(finance, big_withdrawal.pk)
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "awaiting_second_approval"
    assert first.json()["first_approved_by"] == finance.pk
    assert_error(_approve(finance, big_withdrawal.pk), 403, "four_eyes_required")
    big_withdrawal.refresh_from_db()
    assert big_withdrawal.status == "awaiting_second_approval" and big_withdrawal.decided_by is None
    assert verify()[0] == 0


def test_big_withdrawal_when_two_finance_users_approve_then_paid(big_withdrawal, finance, finance2, customer):
    assert _approve(finance, big_withdrawal.pk).json()["status"] == "awaiting_second_approval"
    second = _approve(finance2, big_withdrawal.pk)
    assert second.status_code == 200, second.content
    assert second.json()["status"] == "paid" and second.json()["decided_by"] == finance2.pk
    assert client_for(customer).get("/api/v1/wallet").json()["pending"] == 0
    actions = list(AuditEvent.objects.filter(object_id=big_withdrawal.pk).values_list("action", "actor_id"))
    assert ("withdrawal.approve_first", finance.pk) in actions and ("withdrawal.approve", finance2.pk) in actions
    assert verify()[0] == 0


def test_big_withdrawal_when_one_finance_approves_twice_by_command_then_refused(big_withdrawal, finance):
    out = StringIO()
    args = ("withdrawals", "approve", big_withdrawal.pk, "--actor", finance.email, "--reason", "ok")
    call_command(*args, stdout=out)
    assert f"{big_withdrawal.pk} awaiting_second_approval" in out.getvalue()
    with pytest.raises(CommandError, match="four_eyes_required"):
        call_command(*args, stdout=StringIO())
    big_withdrawal.refresh_from_db()
    assert big_withdrawal.status == "awaiting_second_approval"


def test_big_withdrawal_when_first_by_api_and_second_by_command_of_same_user_then_refused(big_withdrawal, finance):
    _approve(finance, big_withdrawal.pk)
    with pytest.raises(FourEyesRequired):
        withdrawal_approve(withdrawal_id=big_withdrawal.pk, actor=finance, reason="again")
    with pytest.raises(CommandError, match="four_eyes_required"):
        call_command(
            "withdrawals", "approve", big_withdrawal.pk, "--actor", finance.email, "--reason", "x", stdout=StringIO()
        )


def test_big_withdrawal_when_two_finance_users_by_command_then_paid(big_withdrawal, finance, finance2):
    for user in (finance, finance2):
        call_command(
            "withdrawals", "approve", big_withdrawal.pk, "--actor", user.email, "--reason", "ok", stdout=StringIO()
        )
    big_withdrawal.refresh_from_db()
    assert big_withdrawal.status == "paid"
    assert (big_withdrawal.first_approved_by_id, big_withdrawal.decided_by_id) == (finance.pk, finance2.pk)


def test_withdrawal_below_threshold_when_one_finance_approves_then_paid(customer, finance):
    fund(customer, 150_000)
    small = withdrawal_request(user=customer, amount=BIG - 1)
    response = _approve(finance, small.pk)
    assert response.status_code == 200 and response.json()["status"] == "paid"


def test_awaiting_withdrawal_when_rejected_then_released(big_withdrawal, finance, finance2, customer):
    _approve(finance, big_withdrawal.pk)
    response = client_for(finance2).post(
        f"/api/v1/staff/withdrawals/{big_withdrawal.pk}/reject", {"reason": "fraud check"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    assert client_for(customer).get("/api/v1/wallet").json()["balance"] == 300_000
    assert verify()[0] == 0


def test_decision_when_no_reason_then_validation_error(big_withdrawal, finance):
    assert_error(_approve(finance, big_withdrawal.pk, reason=""), 400, "validation_error", "reason")
    assert_error(_approve(finance, big_withdrawal.pk, reason="   "), 400, "validation_error", "reason")


def test_same_approver_twice_when_written_around_the_service_then_database_refuses(big_withdrawal, finance):
    _approve(finance, big_withdrawal.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        Withdrawal.objects.filter(pk=big_withdrawal.pk).update(status="paid", decided_by=finance)


def test_staff_queue_when_finance_lists_then_undecided_oldest_first(customer, finance, finance2):
    fund(customer, 500_000)
    first = withdrawal_request(user=customer, amount=BIG)
    second = withdrawal_request(user=customer, amount=1_000)
    _approve(finance, first.pk)
    body = client_for(finance2).get("/api/v1/staff/withdrawals").json()
    assert [row["id"] for row in body["results"]] == [first.pk, second.pk]
    awaiting = client_for(finance2).get("/api/v1/staff/withdrawals?status=awaiting_second_approval").json()
    assert [row["id"] for row in awaiting["results"]] == [first.pk]
    assert_error(client_for(finance2).get("/api/v1/staff/withdrawals?status=paid"), 400, "validation_error", "status")


def test_withdrawal_decision_when_committed_then_requester_mailed_once(
    big_withdrawal, finance, finance2, customer, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _approve(finance, big_withdrawal.pk)
    assert mailoutbox == []  # the first of two approvals decides nothing yet
    with django_capture_on_commit_callbacks(execute=True):
        _approve(finance2, big_withdrawal.pk)
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [customer.email] and big_withdrawal.pk in message.subject and "paid" in message.subject
    from wallets.tasks import withdrawal_decided_mail

    withdrawal_decided_mail(big_withdrawal.pk)  # a retried task sends nothing again
    assert len(mailoutbox) == 1
