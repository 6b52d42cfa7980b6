"""Row locks of the payments app (global lock order: see ``wallets.locks``)."""

from __future__ import annotations

from typing import Any

from payments.hooks import PaymentHooks, hooks_for
from payments.models import Dispute, Payment, Refund, StripeCustomer, StripeEvent


def lock_payment(payment_id: str) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)


def lock_payment_with_owner(payment_id: str) -> tuple[Payment, Any, PaymentHooks[Any]]:
    """Locks the payment's owner through its kind's hooks (an order; a deposit locks later), then the
    payment: the global lock order. Returns the payment, the owner (or None) and the hooks."""
    kind = Payment.objects.values_list("kind", flat=True).get(pk=payment_id)
    hooks = hooks_for(kind)
    owner = hooks.lock_owner(payment_id)
    return lock_payment(payment_id), owner, hooks


def lock_refund(refund_id: str) -> Refund:
    return Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)


def lock_dispute(dispute_id: str) -> Dispute:
    return Dispute.objects.select_for_update(of=("self",)).get(pk=dispute_id)


def lock_stripe_customer(user_id: str) -> None:
    """The per-user mutex for changes to saved cards (outside the global order: taken alone)."""
    list(StripeCustomer.objects.select_for_update(of=("self",)).filter(pk=user_id).values_list("pk", flat=True))


def lock_stripe_event(event_id: str) -> StripeEvent:
    return StripeEvent.objects.select_for_update(of=("self",)).get(pk=event_id)
