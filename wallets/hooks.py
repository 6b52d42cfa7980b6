"""The hooks wallets registers with payments (``PaymentKind.DEPOSIT``): a deposit's outcome and its disputes.

A deposit is locked after its payment (Payment → Deposit → Account), so it has no owner lock to take first.
"""

from __future__ import annotations

from payments import hooks
from payments.hooks import DisputeTerms, PaymentHooks, payer_dispute_terms
from payments.models import Payment, PaymentKind
from wallets.deposits import deposit_on_payment_changed


def _lock_owner(payment_id: str) -> None:
    return None  # the deposit is locked inside deposit_on_payment_changed, after the payment


def _payment_changed(payment: Payment, owner: None) -> None:
    deposit_on_payment_changed(payment=payment)


def _dispute_terms(payment: Payment, owner: None) -> DisputeTerms:
    return payer_dispute_terms(payment)


DEPOSIT_PAYMENT_HOOKS: PaymentHooks[None] = PaymentHooks(
    lock_owner=_lock_owner, payment_changed=_payment_changed, dispute_terms=_dispute_terms
)


def register() -> None:
    """Called from ``WalletsConfig.ready()``."""
    hooks.register(PaymentKind.DEPOSIT, DEPOSIT_PAYMENT_HOOKS)
