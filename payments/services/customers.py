"""The user's Stripe customer: created on first need, once, and mirrored into dj-stripe for the admin.

Takes no row lock: a unique ``StripeCustomer`` row and a compare-and-set link settle concurrent first uses.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import IntegrityError, transaction

from accounts.models import User
from config.errors import DomainError
from payments import gateway
from payments.models import StripeCustomer
from payments.stripe_data import plain

logger = logging.getLogger(__name__)


def customer_ensure(*, user: User) -> str:
    """Returns the user's Stripe customer id, creating it on first need, once.

    The unique ``StripeCustomer`` row (claimed before Stripe is called) and a
    compare-and-set link make concurrent first uses agree on one customer; the
    Stripe idempotency key makes a retried create return the same one.
    No lock is held while Stripe is called.
    """
    row = StripeCustomer.objects.filter(user_id=user.pk).first()
    if row is not None and row.stripe_customer_id:
        return row.stripe_customer_id
    if row is None:
        try:
            with transaction.atomic():
                StripeCustomer.objects.create(user_id=user.pk)
        except IntegrityError:
            pass
    customer = gateway.call(
        stripe.Customer.create,
        email=user.email,
        name=user.get_full_name(),
        metadata={"user_id": user.pk},
        idempotency_key=f"customer-{user.pk}",
    )
    linked = StripeCustomer.objects.filter(user_id=user.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=customer.id
    )
    winner = StripeCustomer.objects.values_list("stripe_customer_id", flat=True).get(user_id=user.pk)
    if not linked and winner != customer.id:
        # Lost a race to a concurrent first use (no idempotency on the far side): drop ours.
        try:
            gateway.call(stripe.Customer.delete, customer.id)
        except DomainError:
            logger.warning("could not delete a duplicate stripe customer", extra={"customer": customer.id})
        return str(winner)
    _mirror_customer(user=user, customer=customer)
    return str(customer.id)


def _mirror_customer(*, user: User, customer: Any) -> None:
    """dj-stripe's Customer row for the user (subscriber = user), for the admin; best effort."""
    from djstripe.models import Customer

    try:
        mirrored = Customer.sync_from_stripe_data(plain(customer), api_key=gateway.api_key())
        if mirrored.subscriber_id != user.pk:
            mirrored.subscriber = user
            mirrored.save(update_fields=["subscriber"])
    except Exception:
        logger.exception("could not mirror stripe customer", extra={"customer": customer.get("id")})
