"""Saved cards through the API, against the local fake Stripe server."""

from __future__ import annotations

import pytest
import stripe
from djstripe.models import Customer as DjstripeCustomer

from payments.models import SavedCard, StripeCustomer
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory

pytestmark = pytest.mark.stripe


def test_setup_intent_when_customer_asks_then_client_secret_and_one_stripe_customer(fake_stripe, customer_api):
    first = customer_api.post("/api/v1/payment-methods/setup-intent")
    second = customer_api.post("/api/v1/payment-methods/setup-intent")

    assert first.status_code == 200, first.content
    assert first.json()["client_secret"].startswith("seti_")
    assert second.json()["client_secret"] != first.json()["client_secret"]
    link = StripeCustomer.objects.get(user=customer_api.user)
    assert link.stripe_customer_id is not None and link.stripe_customer_id.startswith("cus_")
    assert stripe.Customer.retrieve(link.stripe_customer_id).email == customer_api.user.email
    mirrored = DjstripeCustomer.objects.get(id=link.stripe_customer_id)
    assert mirrored.subscriber_id == customer_api.user.pk


def test_attach_when_valid_card_then_saved_as_default_without_number(fake_stripe, customer_api):
    pm = fake_stripe.create_payment_method("4242424242424242")

    response = customer_api.post("/api/v1/payment-methods", {"payment_method": pm}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == pm
    assert body["brand"] == "visa"
    assert body["last4"] == "4242"
    assert body["exp_month"] == 12 and body["exp_year"] == 2034
    assert body["is_default"] is True
    assert "4242424242424242" not in response.content.decode()
    customer_id = StripeCustomer.objects.get(user=customer_api.user).stripe_customer_id
    assert stripe.PaymentMethod.retrieve(pm).customer == customer_id


def test_attach_when_card_declined_at_attach_then_402_card_declined_and_nothing_saved(fake_stripe, customer_api):
    pm = fake_stripe.create_payment_method("4000000000000002")

    response = customer_api.post("/api/v1/payment-methods", {"payment_method": pm}, format="json")

    error = assert_error(response, 402, "card_declined")
    assert error["type"] == "card_error"
    assert not SavedCard.objects.filter(user=customer_api.user).exists()


def test_attach_when_unknown_payment_method_then_400_payment_method_invalid(fake_stripe, customer_api):
    response = customer_api.post("/api/v1/payment-methods", {"payment_method": "pm_doesnotexist"}, format="json")

    assert_error(response, 400, "payment_method_invalid", param="payment_method")


def test_attach_when_not_a_pm_id_then_400_validation_error(fake_stripe, customer_api):
    response = customer_api.post("/api/v1/payment-methods", {"payment_method": 4242}, format="json")

    assert_error(response, 400, "validation_error", param="payment_method")


def test_attach_when_card_belongs_to_another_user_then_400_payment_method_invalid(fake_stripe, customer_api):
    other = CustomerFactory.create()
    pm = fake_stripe.attach_card(other)

    response = customer_api.post("/api/v1/payment-methods", {"payment_method": pm}, format="json")

    assert_error(response, 400, "payment_method_invalid", param="payment_method")
    assert SavedCard.objects.get(pk=pm).user == other


def test_list_when_three_cards_then_newest_first_one_default(fake_stripe, customer_api):
    first = fake_stripe.attach_card(customer_api.user)
    second = fake_stripe.attach_card(customer_api.user, number="5555555555554444")
    third = fake_stripe.attach_card(customer_api.user)

    response = customer_api.get("/api/v1/payment-methods")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [card["id"] for card in results] == [third, second, first]
    assert [card["is_default"] for card in results] == [False, False, True]
    assert results[1]["last4"] == "4444"


def test_set_default_when_other_card_then_only_it_is_default(fake_stripe, customer_api):
    first = fake_stripe.attach_card(customer_api.user)
    second = fake_stripe.attach_card(customer_api.user)

    response = customer_api.post(f"/api/v1/payment-methods/{second}/default")

    assert response.status_code == 200, response.content
    assert response.json()["is_default"] is True
    assert set(SavedCard.objects.filter(is_default=True).values_list("pk", flat=True)) == {second}
    assert not SavedCard.objects.get(pk=first).is_default


def test_detach_when_default_removed_then_newest_other_becomes_default(fake_stripe, customer_api):
    default = fake_stripe.attach_card(customer_api.user)
    older = fake_stripe.attach_card(customer_api.user)
    newest = fake_stripe.attach_card(customer_api.user)

    response = customer_api.delete(f"/api/v1/payment-methods/{default}")

    assert response.status_code == 204, response.content
    assert not SavedCard.objects.filter(pk=default).exists()
    assert SavedCard.objects.get(pk=newest).is_default
    assert not SavedCard.objects.get(pk=older).is_default
    assert stripe.PaymentMethod.retrieve(default).customer is None


def test_detach_when_card_of_another_user_then_404_and_card_kept(fake_stripe, customer_api):
    other = CustomerFactory.create()
    pm = fake_stripe.attach_card(other)

    response = customer_api.delete(f"/api/v1/payment-methods/{pm}")

    assert_error(response, 404, "not_found")
    assert SavedCard.objects.filter(pk=pm).exists()


def test_payment_methods_when_merchant_then_403(fake_stripe, merchant_api):
    assert_error(merchant_api.get("/api/v1/payment-methods"), 403, "permission_denied")
    assert_error(merchant_api.post("/api/v1/payment-methods/setup-intent"), 403, "permission_denied")
    assert_error(
        merchant_api.post("/api/v1/payment-methods", {"payment_method": "pm_x"}, format="json"),
        403,
        "permission_denied",
    )


def test_payment_methods_when_anonymous_then_401(api):
    assert_error(api.get("/api/v1/payment-methods"), 401, "authentication_failed")


def test_attach_when_stripe_unreachable_then_502_and_nothing_saved(fake_stripe, customer_api):
    pm = fake_stripe.create_payment_method()

    with fake_stripe.unreachable():
        response = customer_api.post("/api/v1/payment-methods", {"payment_method": pm}, format="json")

    error = assert_error(response, 502, "stripe_unavailable")
    assert error["type"] == "api_error"
    assert not SavedCard.objects.exists()


def test_cards_of_two_users_are_separate(fake_stripe, customer_api):
    other = CustomerFactory.create()
    fake_stripe.attach_card(other)
    mine = fake_stripe.attach_card(customer_api.user)

    body = customer_api.get("/api/v1/payment-methods").json()
    theirs = client_for(other).get("/api/v1/payment-methods").json()

    assert [card["id"] for card in body["results"]] == [mine]
    assert mine not in [card["id"] for card in theirs["results"]]
