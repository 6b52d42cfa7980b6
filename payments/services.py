"""Every write to payments, refunds and disputes."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import User
from payments.models import Payment, PaymentMethodType, PaymentStatus


def payment_create(*, user: User, kind: str, method: str, amount: int, currency: str) -> Payment:
    """Records a payment inside the caller's transaction; no Stripe call.

    A wallet payment is final at once (``succeeded``): the caller posts its
    ledger entry in the same transaction. A card payment starts in
    ``requires_payment_method`` until the card is charged.
    """
    now = timezone.now()
    is_wallet = method == PaymentMethodType.WALLET
    payment = Payment(
        user=user,
        kind=kind,
        method=method,
        amount=amount,
        currency=currency,
        status=PaymentStatus.SUCCEEDED if is_wallet else PaymentStatus.REQUIRES_PAYMENT_METHOD,
        created_at=now,
        updated_at=now,
        succeeded_at=now if is_wallet else None,
    )
    payment.save(force_insert=True)
    return payment
