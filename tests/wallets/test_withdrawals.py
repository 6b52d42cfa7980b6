from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory
from tests.wallets.conftest import fund, verify
from wallets.ledger import platform_account_id
from wallets.models import Entry, Withdrawal
from wallets.withdrawals import withdrawal_approve, withdrawal_reject

URL = "/api/v1/wallet/withdrawals"


def _platform_balance(kind: str) -> int:
    from django.db.models import Sum

    from wallets.models import Posting

    return Posting.objects.filter(account_id=platform_account_id(kind, "usd")).aggregate(s=Sum("amount"))["s"] or 0


def test_withdrawal_request_when_funded_then_amount_held_at_once(customer_api, funded_customer):
    response = customer_api.post(URL, {"amount": 4_000}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("wdr_")
    assert body["status"] == "pending" and body["amount"] == 4_000 and body["currency"] == "usd"
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 6_000,
        "withdrawable": 6_000,
        "pending": 4_000,
        "incoming": 0,
        "currency": "usd",
    }
    entry = Entry.objects.get(reference=body["id"])
    assert entry.kind == "withdrawal_hold"
    assert _platform_balance("withdrawals_in_flight") == 4_000
    assert verify()[0] == 0


def test_withdrawal_approve_when_pending_then_paid_and_hold_cleared(customer_api, funded_customer, staff):
    withdrawal_id = customer_api.post(URL, {"amount": 4_000}, format="json").json()["id"]
    out = StringIO()
    call_command("withdrawals", "approve", withdrawal_id, "--actor", staff.email, "--reason", "ok", stdout=out)
    assert f"{withdrawal_id} paid" in out.getvalue()
    detail = customer_api.get(f"{URL}/{withdrawal_id}").json()
    assert detail["status"] == "paid" and detail["decided_at"]
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 6_000,
        "withdrawable": 6_000,
        "pending": 0,
        "incoming": 0,
        "currency": "usd",
    }
    assert _platform_balance("withdrawals_in_flight") == 0
    assert _platform_balance("payouts") == 4_000
    event = AuditEvent.objects.get(object_id=withdrawal_id)
    assert event.action == "withdrawal.approve" and event.actor == staff
    assert verify()[0] == 0


def test_withdrawal_reject_when_pending_then_funds_released(customer_api, funded_customer, staff):
    withdrawal_id = customer_api.post(URL, {"amount": 4_000}, format="json").json()["id"]
    out = StringIO()
    call_command(
        "withdrawals", "reject", withdrawal_id, "--reason", "bank details wrong", "--actor", staff.email, stdout=out
    )
    assert f"{withdrawal_id} rejected" in out.getvalue()
    detail = customer_api.get(f"{URL}/{withdrawal_id}").json()
    assert detail["status"] == "rejected" and detail["reason"] == "bank details wrong"
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 10_000,
        "withdrawable": 10_000,
        "pending": 0,
        "incoming": 0,
        "currency": "usd",
    }
    kinds = [row["kind"] for row in customer_api.get("/api/v1/wallet/transactions").json()["results"]]
    assert kinds == ["withdrawal_released", "withdrawal_hold", "adjustment"]
    assert _platform_balance("withdrawals_in_flight") == 0
    assert AuditEvent.objects.get(object_id=withdrawal_id).action == "withdrawal.reject"
    assert verify()[0] == 0


def test_withdrawal_decide_when_already_decided_then_invalid_status(customer_api, funded_customer, staff):
    withdrawal_id = customer_api.post(URL, {"amount": 1_000}, format="json").json()["id"]
    withdrawal_approve(withdrawal_id=withdrawal_id, actor=staff, reason="ok")
    with pytest.raises(CommandError, match="invalid_status"):
        call_command(
            "withdrawals", "reject", withdrawal_id, "--reason", "too late", "--actor", staff.email, stdout=StringIO()
        )
    with pytest.raises(CommandError, match="invalid_status"):
        call_command(
            "withdrawals", "approve", withdrawal_id, "--reason", "x", "--actor", staff.email, stdout=StringIO()
        )
    assert Entry.objects.filter(reference=withdrawal_id).count() == 2
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 9_000


def test_withdrawal_decide_when_unknown_id_then_command_fails(staff):
    with pytest.raises(CommandError, match="not_found"):
        call_command(
            "withdrawals",
            "approve",
            "wdr_00000000000000000000000000",
            "--reason",
            "x",
            "--actor",
            staff.email,
            stdout=StringIO(),
        )


def test_withdrawals_list_command_when_pending_then_listed_oldest_first(customer_api, funded_customer, staff):
    first = customer_api.post(URL, {"amount": 1_000}, format="json").json()["id"]
    second = customer_api.post(URL, {"amount": 2_000}, format="json").json()["id"]
    withdrawal_reject(withdrawal_id=second, actor=staff, reason="no")
    third = customer_api.post(URL, {"amount": 3_000}, format="json").json()["id"]
    out = StringIO()
    call_command("withdrawals", "list", stdout=out)
    text = out.getvalue()
    assert first in text and third in text and second not in text
    assert text.index(first) < text.index(third)
    assert "2 awaiting a decision" in text


def test_withdrawal_request_when_balance_too_low_then_402_and_nothing_held(customer_api, customer):
    fund(customer, 999)
    assert_error(customer_api.post(URL, {"amount": 1_000}, format="json"), 402, "insufficient_funds", "amount")
    assert Withdrawal.objects.count() == 0
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 999,
        "withdrawable": 999,
        "pending": 0,
        "incoming": 0,
        "currency": "usd",
    }


def test_withdrawal_request_when_held_funds_not_available_then_402(customer_api, customer):
    fund(customer, 1_500)
    assert customer_api.post(URL, {"amount": 1_000}, format="json").status_code == 201
    assert_error(customer_api.post(URL, {"amount": 1_000}, format="json"), 402, "insufficient_funds", "amount")


@pytest.mark.parametrize("amount", [499, 5_000_001])
def test_withdrawal_request_when_outside_limits_then_limit_exceeded(customer_api, customer, amount):
    fund(customer, 10_000_000)
    assert_error(customer_api.post(URL, {"amount": amount}, format="json"), 400, "limit_exceeded", "amount")
    assert Withdrawal.objects.count() == 0


@pytest.mark.parametrize("amount", [500, 5_000_000])
def test_withdrawal_request_when_at_limits_then_accepted(customer_api, customer, amount):
    fund(customer, 10_000_000)
    assert customer_api.post(URL, {"amount": amount}, format="json").status_code == 201


def test_withdrawal_request_when_limits_configured_then_followed(customer_api, funded_customer, settings):
    settings.MINIMUM_WITHDRAWAL = 2_000
    assert_error(customer_api.post(URL, {"amount": 1_999}, format="json"), 400, "limit_exceeded", "amount")
    assert customer_api.post(URL, {"amount": 2_000}, format="json").status_code == 201


@pytest.mark.parametrize("amount", [10.5, "1000", True, 0, -100, None])
def test_withdrawal_request_when_amount_not_positive_int_then_validation_error(customer_api, funded_customer, amount):
    assert_error(customer_api.post(URL, {"amount": amount}, format="json"), 400, "validation_error", "amount")


def test_withdrawal_request_when_amount_missing_then_validation_error(customer_api, funded_customer):
    assert_error(customer_api.post(URL, {}, format="json"), 400, "validation_error", "amount")


def test_withdrawal_request_when_body_not_json_then_validation_error(customer_api, funded_customer):
    response = customer_api.post(URL, "amount=1000", content_type="application/x-www-form-urlencoded")
    assert_error(response, 400, "validation_error")


def test_withdrawal_request_when_anonymous_then_401(api):
    assert_error(api.post(URL, {"amount": 1_000}, format="json"), 401, "authentication_failed")


def test_withdrawal_request_when_over_rate_then_429(customer_api, funded_customer, settings):
    settings.THROTTLE_SCALE = 0.2  # withdrawals: 10/min → 2/min
    for _ in range(2):
        assert customer_api.post(URL, {"amount": 500}, format="json").status_code == 201
    response = customer_api.post(URL, {"amount": 500}, format="json")
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"]
    assert Withdrawal.objects.count() == 2
    # Reading one's withdrawals is not throttled with the POSTs.
    assert customer_api.get(URL).status_code == 200


def test_withdrawals_list_when_owner_then_own_newest_first_paginated(customer_api, funded_customer):
    ids = [customer_api.post(URL, {"amount": 500 + i}, format="json").json()["id"] for i in range(3)]
    other = CustomerFactory.create()
    fund(other, 1_000)
    client_for(other).post(URL, {"amount": 500}, format="json")
    page = customer_api.get(f"{URL}?limit=2").json()
    assert [row["id"] for row in page["results"]] == ids[::-1][:2]
    rest = customer_api.get(page["next"]).json()
    assert [row["id"] for row in rest["results"]] == ids[:1]
    assert rest["next"] is None


def test_withdrawal_detail_when_other_users_then_404(customer_api, funded_customer):
    withdrawal_id = customer_api.post(URL, {"amount": 500}, format="json").json()["id"]
    stranger = client_for(CustomerFactory.create())
    assert_error(stranger.get(f"{URL}/{withdrawal_id}"), 404, "not_found")
    assert_error(customer_api.get(f"{URL}/wdr_unknown"), 404, "not_found")


def test_withdrawal_request_when_merchant_then_merchant_wallet_debited(merchant_api, merchant):
    fund(merchant, 3_000)
    assert merchant_api.post(URL, {"amount": 3_000}, format="json").status_code == 201
    assert merchant_api.get("/api/v1/wallet").json() == {
        "balance": 0,
        "withdrawable": 0,
        "pending": 3_000,
        "incoming": 0,
        "currency": "usd",
    }


def test_withdrawal_request_when_repeated_with_idempotency_key_then_held_once(customer_api, funded_customer):
    headers = {"HTTP_IDEMPOTENCY_KEY": "withdraw-once-1"}
    first = customer_api.post(URL, {"amount": 3_000}, format="json", **headers)
    again = customer_api.post(URL, {"amount": 3_000}, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Withdrawal.objects.count() == 1
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 7_000,
        "withdrawable": 7_000,
        "pending": 3_000,
        "incoming": 0,
        "currency": "usd",
    }
    other = customer_api.post(URL, {"amount": 1_000}, format="json", **headers)
    assert_error(other, 422, "idempotency_key_reused")
