"""Row locks of the payments app (global lock order: see ``wallets.locks``)."""

from __future__ import annotations

from payments.models import Dispute, Payment, Refund, StripeCustomer, StripeEvent


def lock_payment(payment_id: str) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)


def lock_refund(refund_id: str) -> Refund:
    return Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)


def lock_dispute(dispute_id: str) -> Dispute:
    return Dispute.objects.select_for_update(of=("self",)).get(pk=dispute_id)


def lock_stripe_customer(user_id: str) -> None:
    """The per-user mutex for changes to saved cards (outside the global order: taken alone)."""
    list(StripeCustomer.objects.select_for_update(of=("self",)).filter(pk=user_id).values_list("pk", flat=True))


def lock_stripe_event(event_id: str) -> StripeEvent:
    return StripeEvent.objects.select_for_update(of=("self",)).get(pk=event_id)
