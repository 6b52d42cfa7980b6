"""Deposits: the API with the card charge stubbed to its contract, and the payment hook itself.

``payments.services.charges.card_payment_confirm`` (the payments app's) charges the card
outside any transaction, records the outcome under the payment's row lock and
calls ``wallets.deposits.deposit_on_payment_changed``; the stub below does the
same without Stripe. The end-to-end run against the fake Stripe server lives
with the payments tests.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from config.errors import CardDeclined, StripeUnavailable
from payments.locks import lock_payment
from payments.models import Payment, PaymentKind, PaymentMethodType
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory
from tests.wallets.conftest import verify
from wallets.deposits import deposit_on_payment_changed
from wallets.models import Account, Deposit, Entry

URL = "/api/v1/wallet/deposits"


def _record(payment_id: str | None, status: str) -> None:
    """What the payments app does with a charge's outcome (and a webhook with an event)."""
    assert payment_id is not None
    with transaction.atomic():
        payment = lock_payment(payment_id)
        payment.status = status
        payment.save(update_fields=["status"])
        deposit_on_payment_changed(payment=payment)


@pytest.fixture
def card(monkeypatch):
    """Stubs the card charge; ``card.outcome`` picks what the next charge does."""

    class Card:
        outcome = "succeeded"
        depth = 0
        calls: list[tuple[str, str | None]] = []

        def __call__(self, *, payment_id: str, payment_method_id: str | None) -> Payment:
            # The test itself runs in a transaction: no block beyond it may be open here.
            assert len(connection.atomic_blocks) == self.depth, "charged inside a transaction"
            self.calls.append((payment_id, payment_method_id))
            if self.outcome == "unavailable":
                raise StripeUnavailable()
            _record(payment_id, "failed" if self.outcome == "declined" else self.outcome)
            if self.outcome == "declined":
                raise CardDeclined(decline_code="insufficient_funds")
            return Payment.objects.get(pk=payment_id)

    stub = Card()
    stub.calls = []
    stub.depth = len(connection.atomic_blocks)
    monkeypatch.setattr("wallets.deposits.card_payment_confirm", stub, raising=False)
    return stub


def test_deposit_when_card_succeeds_then_wallet_credited(customer_api, card):
    response = customer_api.post(URL, {"amount": 2_500, "payment_method": "pm_card_visa"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("dep_") and body["payment"].startswith("pay_")
    assert (body["status"], body["amount"], body["currency"]) == ("succeeded", 2_500, "usd")
    assert card.calls == [(body["payment"], "pm_card_visa")]
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 2_500,
        "withdrawable": 2_500,
        "pending": 0,
        "incoming": 0,
        "currency": "usd",
    }
    [row] = customer_api.get("/api/v1/wallet/transactions").json()["results"]
    assert (row["kind"], row["amount"], row["reference"]) == ("deposit", 2_500, body["id"])
    assert customer_api.get(f"{URL}/{body['id']}").json()["status"] == "succeeded"
    payment = Payment.objects.get(pk=body["payment"])
    assert (payment.kind, payment.method, payment.amount) == ("deposit", "card", 2_500)
    assert verify()[0] == 0


def test_deposit_when_card_declined_then_402_and_deposit_failed(customer_api, card):
    card.outcome = "declined"
    response = customer_api.post(URL, {"amount": 2_500, "payment_method": "pm_card_chargeDeclined"}, format="json")
    error = assert_error(response, 402, "card_declined")
    assert error["type"] == "card_error" and error["decline_code"] == "insufficient_funds"
    deposit = Deposit.objects.get()
    assert deposit.status == "failed"
    assert customer_api.get(f"{URL}/{deposit.pk}").json()["status"] == "failed"
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 0
    assert not Entry.objects.exists()


def test_deposit_when_stripe_unavailable_then_502_and_deposit_pending(customer_api, card):
    card.outcome = "unavailable"
    response = customer_api.post(URL, {"amount": 2_500, "payment_method": "pm_card_visa"}, format="json")
    assert_error(response, 502, "stripe_unavailable")
    deposit = Deposit.objects.get()
    assert deposit.status == "pending"
    # The charge went through after all: the webhook (or the reconciler) brings the news.
    _record(deposit.payment_id, "succeeded")
    assert customer_api.get(f"{URL}/{deposit.pk}").json()["status"] == "succeeded"
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 2_500


def test_deposit_when_card_needs_action_then_pending_until_webhook(customer_api, card):
    card.outcome = "requires_action"
    body = customer_api.post(URL, {"amount": 1_000, "payment_method": "pm_card_3ds"}, format="json").json()
    assert body["status"] == "pending"
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 0
    _record(body["payment"], "succeeded")
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 1_000


@pytest.mark.parametrize("amount", [99, 1_000_001])
def test_deposit_when_outside_limits_then_limit_exceeded_and_no_charge(customer_api, card, amount):
    response = customer_api.post(URL, {"amount": amount, "payment_method": "pm_card_visa"}, format="json")
    assert_error(response, 400, "limit_exceeded", "amount")
    assert card.calls == []
    assert not Deposit.objects.exists() and not Payment.objects.exists()


@pytest.mark.parametrize("amount", [100, 1_000_000])
def test_deposit_when_at_limits_then_accepted(customer_api, card, amount):
    response = customer_api.post(URL, {"amount": amount, "payment_method": "pm_card_visa"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount": 10.5, "payment_method": "pm_card_visa"}, "amount"),
        ({"amount": "1000", "payment_method": "pm_card_visa"}, "amount"),
        ({"amount": False, "payment_method": "pm_card_visa"}, "amount"),
        ({"amount": -5, "payment_method": "pm_card_visa"}, "amount"),
        ({"payment_method": "pm_card_visa"}, "amount"),
        ({"amount": 1_000}, "payment_method"),
        ({"amount": 1_000, "payment_method": ""}, "payment_method"),
    ],
)
def test_deposit_when_body_invalid_then_validation_error(customer_api, card, body, param):
    assert_error(customer_api.post(URL, body, format="json"), 400, "validation_error", param)
    assert card.calls == []


def test_deposit_when_anonymous_then_401(api, card):
    assert_error(
        api.post(URL, {"amount": 1_000, "payment_method": "pm_card_visa"}, format="json"), 401, "authentication_failed"
    )


def test_deposit_when_over_rate_then_429(customer_api, card, settings):
    settings.THROTTLE_SCALE = 0.05  # payments: 30/min → 1/min
    assert customer_api.post(URL, {"amount": 1_000, "payment_method": "pm_card_visa"}, format="json").status_code == 201
    response = customer_api.post(URL, {"amount": 1_000, "payment_method": "pm_card_visa"}, format="json")
    assert_error(response, 429, "rate_limited")
    assert Deposit.objects.count() == 1


def test_deposit_detail_when_other_users_then_404(customer_api, card):
    deposit_id = customer_api.post(URL, {"amount": 1_000, "payment_method": "pm_card_visa"}, format="json").json()["id"]
    assert_error(client_for(CustomerFactory.create()).get(f"{URL}/{deposit_id}"), 404, "not_found")
    assert_error(customer_api.get(f"{URL}/dep_unknown"), 404, "not_found")


# --- the hook, driven the way webhooks drive it ------------------------------------


def _pending_deposit(customer, card, amount=3_000) -> Deposit:
    card.outcome = "requires_action"
    body = client_for(customer).post(URL, {"amount": amount, "payment_method": "pm_card_visa"}, format="json").json()
    return Deposit.objects.get(pk=body["id"])


def test_hook_when_success_seen_many_times_then_credited_once(customer, card):
    deposit = _pending_deposit(customer, card)
    for _ in range(3):
        _record(deposit.payment_id, "succeeded")
    assert Account.objects.get(owner=customer).balance == 3_000
    assert Entry.objects.filter(kind="deposit", reference=deposit.pk).count() == 1
    assert verify()[0] == 0


def test_hook_when_failure_arrives_after_success_then_stays_succeeded(customer, card):
    deposit = _pending_deposit(customer, card)
    _record(deposit.payment_id, "succeeded")
    _record(deposit.payment_id, "failed")
    _record(deposit.payment_id, "canceled")
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert Account.objects.get(owner=customer).balance == 3_000


def test_hook_when_success_arrives_after_failure_then_credited(customer, card):
    deposit = _pending_deposit(customer, card)
    _record(deposit.payment_id, "failed")
    deposit.refresh_from_db()
    assert deposit.status == "failed"
    _record(deposit.payment_id, "succeeded")
    deposit.refresh_from_db()
    assert deposit.status == "succeeded" and deposit.completed_at
    assert Account.objects.get(owner=customer).balance == 3_000


def test_hook_when_canceled_then_deposit_canceled(customer, card):
    deposit = _pending_deposit(customer, card)
    _record(deposit.payment_id, "canceled")
    deposit.refresh_from_db()
    assert deposit.status == "canceled"
    assert Account.objects.get(owner=customer).balance == 0


def test_hook_when_payment_still_processing_then_nothing_changes(customer, card):
    deposit = _pending_deposit(customer, card)
    _record(deposit.payment_id, "processing")
    deposit.refresh_from_db()
    assert deposit.status == "pending"
    assert not Entry.objects.exists()


def test_hook_when_payment_is_not_a_deposit_then_ignored(customer):
    from payments.services.charges import payment_create

    with transaction.atomic():
        payment = payment_create(
            user=customer, kind=PaymentKind.ORDER, method=PaymentMethodType.CARD, amount=1_000, currency="usd"
        )
    _record(payment.pk, "succeeded")
    assert not Entry.objects.exists()


def test_deposit_when_repeated_with_idempotency_key_then_charged_and_credited_once(customer_api, card):
    headers = {"HTTP_IDEMPOTENCY_KEY": "top-up-1"}
    body = {"amount": 1_500, "payment_method": "pm_card_visa"}
    first = customer_api.post(URL, body, format="json", **headers)
    again = customer_api.post(URL, body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert len(card.calls) == 1 and Deposit.objects.count() == 1
    assert customer_api.get("/api/v1/wallet").json()["balance"] == 1_500


def test_deposit_when_card_not_usable_before_charge_then_400_and_deposit_canceled(customer_api, monkeypatch):
    from config.errors import PaymentMethodInvalid

    def refuse(*, payment_id, payment_method_id):
        raise PaymentMethodInvalid("This card is not yours.", param="payment_method")

    monkeypatch.setattr("wallets.deposits.card_payment_confirm", refuse, raising=False)
    response = customer_api.post(URL, {"amount": 1_000, "payment_method": "pm_someone_elses"}, format="json")
    assert_error(response, 400, "payment_method_invalid", "payment_method")
    deposit = Deposit.objects.get()
    assert deposit.status == "canceled"
    assert Payment.objects.get(pk=deposit.payment_id).status == "canceled"
    assert customer_api.get(f"{URL}/{deposit.pk}").json()["status"] == "canceled"
