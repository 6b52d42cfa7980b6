"""Deposits against the local fake Stripe server: the wallet side of a real card charge."""

from __future__ import annotations

import pytest
import stripe

from payments.models import Payment
from payments.services.charges import payment_sync
from tests.conftest import assert_error
from tests.wallets.conftest import verify
from wallets.models import Deposit, Entry

pytestmark = pytest.mark.stripe

URL = "/api/v1/wallet/deposits"


def test_deposit_when_card_charged_then_history_shows_credit_and_ledger_verifies(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user)
    body = customer_api.post(URL, {"amount": 3_300, "payment_method": pm}, format="json").json()
    assert body["status"] == "succeeded"
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 3_300,
        "withdrawable": 3_300,
        "pending": 0,
        "incoming": 0,
        "currency": "usd",
    }
    [row] = customer_api.get("/api/v1/wallet/transactions").json()["results"]
    assert (row["kind"], row["amount"], row["balance_before"], row["balance_after"]) == ("deposit", 3_300, 0, 3_300)
    assert row["reference"] == body["id"]
    code, out = verify()
    assert code == 0, out


def test_deposit_when_success_redelivered_by_webhooks_then_credited_once(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user)
    body = customer_api.post(URL, {"amount": 1_200, "payment_method": pm}, format="json").json()
    payment = Payment.objects.get(pk=body["payment"])
    assert payment.stripe_payment_intent_id is not None
    intent = stripe.PaymentIntent.retrieve(payment.stripe_payment_intent_id)
    for _ in range(3):
        payment_sync(payment_id=payment.pk, intent=intent)  # what each webhook delivery applies
    assert Entry.objects.filter(kind="deposit", reference=body["id"]).count() == 1
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 1_200


def test_deposit_when_declined_then_402_deposit_failed_and_wallet_untouched(fake_stripe, customer_api):
    pm = fake_stripe.attach_card(customer_api.user, number="4000000000000341")
    assert_error(customer_api.post(URL, {"amount": 1_200, "payment_method": pm}, format="json"), 402, "card_declined")
    deposit = Deposit.objects.get()
    assert customer_api.get(f"{URL}/{deposit.pk}").json()["status"] == "failed"
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 0
    assert customer_api.get("/api/v1/wallet/transactions").json()["results"] == []


def test_deposit_when_payment_method_unknown_then_400_payment_method_invalid(fake_stripe, customer_api):
    response = customer_api.post(URL, {"amount": 1_200, "payment_method": "pm_nope"}, format="json")
    assert_error(response, 400, "payment_method_invalid")
    assert Deposit.objects.get().status == "canceled"  # nothing will ever come of it
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 0
