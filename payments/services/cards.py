"""Saved cards: SetupIntents, attaching, detaching, the default card, and which card a charge uses.

Locks: the user's StripeCustomer row (a per-user mutex, taken alone, after Stripe answered).
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import transaction

from accounts.models import User
from config.db import retry_on_contention
from config.errors import NotFound, PaymentMethodInvalid
from payments import gateway
from payments.errors import translate_stripe_error
from payments.locks import lock_stripe_customer
from payments.models import SavedCard
from payments.services.customers import customer_ensure
from payments.stripe_data import plain

logger = logging.getLogger(__name__)


def setup_intent_create(*, user: User) -> str:
    """A SetupIntent for collecting a card client-side; returns its client secret."""
    customer_id = customer_ensure(user=user)
    intent = gateway.call(
        stripe.SetupIntent.create,
        customer=customer_id,
        usage="off_session",
        payment_method_types=["card"],
        metadata={"user_id": user.pk},
    )
    return str(intent.client_secret)


def _card_details(payment_method: Any) -> dict[str, Any]:
    card = payment_method.get("card") or {}
    return {
        "brand": str(card.get("brand") or "")[:32],
        "last4": str(card.get("last4") or "")[:4],
        "exp_month": card.get("exp_month"),
        "exp_year": card.get("exp_year"),
    }


def payment_method_attach(*, user: User, payment_method_id: str) -> SavedCard:
    """Attaches a card to the user's Stripe customer and saves what a receipt shows.

    The first card becomes the default. Locks: the user's StripeCustomer row
    (after Stripe answered). Raises CardDeclined, PaymentMethodInvalid.
    """
    if not isinstance(payment_method_id, str) or not payment_method_id.startswith("pm_"):
        raise PaymentMethodInvalid("Expected a PaymentMethod id (pm_…).", param="payment_method")
    existing = SavedCard.objects.filter(pk=payment_method_id).first()
    if existing is not None:
        if existing.user_id != user.pk:
            raise PaymentMethodInvalid(param="payment_method")
        return existing
    customer_id = customer_ensure(user=user)
    method: Any = gateway.call(stripe.PaymentMethod.retrieve, payment_method_id, param="payment_method")
    if method.get("type") != "card":
        raise PaymentMethodInvalid("Only cards can be saved.", param="payment_method")
    owner = method.get("customer")
    if owner and owner != customer_id:
        raise PaymentMethodInvalid(param="payment_method")
    if not owner:
        method = gateway.call(
            stripe.PaymentMethod.attach,
            payment_method_id,
            customer=customer_id,
            param="payment_method",
            idempotency_key=f"attach-{payment_method_id}-{customer_id}",
        )
    return _saved_card_record(user=user, method=method)


@retry_on_contention()
def _saved_card_record(*, user: User, method: Any) -> SavedCard:
    with transaction.atomic():
        lock_stripe_customer(user.pk)
        card = SavedCard.objects.filter(pk=method["id"]).first()
        if card is not None:
            return card
        has_default = SavedCard.objects.filter(user_id=user.pk, is_default=True).exists()
        card = SavedCard(id=method["id"], user=user, is_default=not has_default, **_card_details(method))
        card.save(force_insert=True)
    _mirror_payment_method(method)
    return card


def _mirror_payment_method(method: Any) -> None:
    from djstripe.models import PaymentMethod

    try:
        PaymentMethod.sync_from_stripe_data(plain(method), api_key=gateway.api_key())
    except Exception:
        logger.exception("could not mirror stripe payment method", extra={"payment_method": method.get("id")})


def payment_method_detach(*, user: User, payment_method_id: str) -> None:
    """Detaches a saved card; when it was the default, the newest other card becomes default.

    Locks: the user's StripeCustomer row (after Stripe answered).
    """
    card = SavedCard.objects.filter(pk=payment_method_id, user_id=user.pk).first()
    if card is None:
        raise NotFound("No such payment method.")
    try:
        gateway.raw_call(stripe.PaymentMethod.detach, payment_method_id)
    except stripe.InvalidRequestError:
        # Already detached on Stripe's side (or gone): forgetting it is what the user wants.
        logger.info("payment method was not attached at stripe", extra={"payment_method": payment_method_id})
    except stripe.StripeError as exc:
        raise translate_stripe_error(exc, param="payment_method") from exc
    _saved_card_forget(user=user, payment_method_id=payment_method_id)


@retry_on_contention()
def _saved_card_forget(*, user: User, payment_method_id: str) -> None:
    with transaction.atomic():
        lock_stripe_customer(user.pk)
        card = SavedCard.objects.filter(pk=payment_method_id, user_id=user.pk).first()
        if card is None:
            return
        was_default = card.is_default
        card.delete()
        if was_default:
            newest = SavedCard.objects.filter(user_id=user.pk).order_by("-created_at", "-id").first()
            if newest is not None:
                newest.is_default = True
                newest.save(update_fields=["is_default"])


@retry_on_contention()
def payment_method_set_default(*, user: User, payment_method_id: str) -> SavedCard:
    """Makes one saved card the default. Locks: the user's StripeCustomer row."""
    with transaction.atomic():
        if not SavedCard.objects.filter(pk=payment_method_id, user_id=user.pk).exists():
            raise NotFound("No such payment method.")
        lock_stripe_customer(user.pk)
        SavedCard.objects.filter(user_id=user.pk, is_default=True).exclude(pk=payment_method_id).update(
            is_default=False
        )
        SavedCard.objects.filter(pk=payment_method_id).update(is_default=True)
        return SavedCard.objects.get(pk=payment_method_id)


def _default_card(user_id: str) -> SavedCard | None:
    return SavedCard.objects.filter(user_id=user_id, is_default=True).first()


def card_resolve(*, user_id: str, payment_method_id: str | None) -> SavedCard:
    if payment_method_id is None:
        card = _default_card(user_id)
        if card is None:
            raise PaymentMethodInvalid("No saved card to charge; add one first.", param="payment_method")
        return card
    card = SavedCard.objects.filter(pk=payment_method_id, user_id=user_id).first()
    if card is None:
        raise PaymentMethodInvalid("This card is not one of your saved cards.", param="payment_method")
    return card
