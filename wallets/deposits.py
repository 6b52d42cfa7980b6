"""Wallet top-ups from a saved card: the deposit, its card payment, and the credit once it succeeds.

Locks: Payment (held by payments when it calls back) → Deposit → the wallet account (``ledger_post``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.errors import CardDeclined, PaymentMethodInvalid, StripeUnavailable
from payments.models import Payment, PaymentKind, PaymentMethodType, PaymentStatus
from payments.services.charges import card_payment_cancel, card_payment_confirm, payment_create, payment_for_request
from wallets.errors import AmountOutsideLimits
from wallets.ledger import Leg, ledger_post, platform_account_id, wallet_id_for
from wallets.locks import lock_deposit
from wallets.models import AccountKind, Deposit, DepositStatus, Entry, EntryKind


def deposit_key(deposit_id: str) -> str:
    """The ledger idempotency key of a deposit's credit: one credit per deposit, ever."""
    return f"deposit:{deposit_id}"


def deposit_create(*, user: User, amount: int, payment_method_id: str) -> Deposit:
    """Tops up the user's wallet from a saved card.

    In one transaction the deposit (pending) and its card payment are recorded;
    after commit the card is charged through ``payments`` (no lock held), whose
    outcome reaches ``deposit_on_payment_changed`` (``wallets.hooks``). Raises
    ``LimitExceeded``, and whatever the charge raises (``CardDeclined``,
    ``PaymentMethodInvalid``, ``StripeUnavailable``) after the outcome is recorded.
    """
    AmountOutsideLimits.check(amount, settings.MINIMUM_DEPOSIT, settings.MAXIMUM_DEPOSIT, "deposit")
    earlier = payment_for_request(kind=PaymentKind.DEPOSIT)
    if earlier is not None and earlier.user_id == user.pk:  # a retry of this request: resume, never a second one
        found = Deposit.objects.filter(payment=earlier).first()
        if found is not None:
            return _deposit_charge(found, payment_method_id)
    currency = settings.PLATFORM_CURRENCY
    with transaction.atomic():
        account_id = wallet_id_for(user_id=user.pk, role=user.role, currency=currency)
        payment = payment_create(
            user=user, kind=PaymentKind.DEPOSIT, method=PaymentMethodType.CARD, amount=amount, currency=currency
        )
        now = timezone.now()
        deposit = Deposit(
            user=user,
            account_id=account_id,
            amount=amount,
            currency=currency,
            payment=payment,
            created_at=now,
            updated_at=now,
        )
        deposit.save(force_insert=True)
    return _deposit_charge(deposit, payment_method_id)


def _deposit_charge(deposit: Deposit, payment_method_id: str) -> Deposit:
    """Charges a deposit's card payment (a no-op once charged); its errors name the deposit."""
    payment_id = deposit.payment_id
    assert payment_id is not None
    try:
        card_payment_confirm(payment_id=payment_id, payment_method_id=payment_method_id)
    except PaymentMethodInvalid as refused:
        refused.extra.setdefault("deposit", deposit.pk)
        _deposit_abandon_uncharged(payment_id)
        raise
    except (CardDeclined, StripeUnavailable) as failed:
        failed.extra.setdefault("deposit", deposit.pk)
        raise
    return Deposit.objects.select_related("payment").get(pk=deposit.pk)


def _deposit_abandon_uncharged(payment_id: str) -> None:
    """A card refused before it reached Stripe leaves nothing to wait for: the deposit ends canceled."""
    untouched = Payment.objects.filter(
        pk=payment_id, status=PaymentStatus.REQUIRES_PAYMENT_METHOD, stripe_payment_intent_id__isnull=True
    ).exists()
    if untouched:
        card_payment_cancel(payment_id=payment_id)  # no intent: recorded locally, no Stripe call


def deposit_on_payment_changed(*, payment: Payment) -> None:
    """Brings a deposit in line with its payment; safe to call any number of times, in any order.

    Called by ``payments`` (through ``wallets.hooks``) inside its transaction,
    holding the payment's row lock. Locks: the deposit, then (through
    ``ledger_post``) the wallet. A succeeded payment credits the wallet exactly
    once (the entry's idempotency key is the deposit's); a deposit that was
    credited stays succeeded.
    """
    deposit_id = Deposit.objects.filter(payment_id=payment.pk).values_list("pk", flat=True).first()
    if deposit_id is None:
        return
    deposit = lock_deposit(deposit_id)
    if deposit.status == DepositStatus.SUCCEEDED:
        return
    now = timezone.now()
    if payment.status == PaymentStatus.SUCCEEDED:
        # The card was charged: the money is the customer's whatever an earlier
        # attempt reported, so a failed deposit is credited too.
        key = deposit_key(deposit.pk)
        if not Entry.objects.filter(idempotency_key=key).exists():
            ledger_post(
                kind=EntryKind.DEPOSIT,
                currency=deposit.currency,
                reference=deposit.pk,
                idempotency_key=key,
                memo=f"payment {payment.pk}",
                legs=[
                    Leg(platform_account_id(AccountKind.CARD_CLEARING, deposit.currency), -deposit.amount),
                    Leg(deposit.account_id, deposit.amount),
                ],
            )
        deposit.status = DepositStatus.SUCCEEDED
        deposit.completed_at = now
    elif payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and deposit.status == DepositStatus.PENDING:
        deposit.status = DepositStatus.FAILED if payment.status == PaymentStatus.FAILED else DepositStatus.CANCELED
        deposit.completed_at = now
    else:
        return
    deposit.updated_at = now
    deposit.save(update_fields=["status", "completed_at", "updated_at"])
