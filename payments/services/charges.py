"""Card and wallet payments: recording them, charging a saved card, canceling, and applying Stripe's state.

Locks (``payment_sync``): the payment's owner through its kind's hooks, then the payment; none while Stripe is called.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from config import metrics
from config.db import retry_on_contention
from config.errors import CardDeclined, PaymentMethodInvalid
from config.request_keys import current_request_key
from payments import gateway
from payments.errors import is_unavailable, translate_stripe_error
from payments.locks import lock_payment_with_owner
from payments.models import FINAL_PAYMENT_STATUSES as FINAL_STATUSES
from payments.models import Payment, PaymentKind, PaymentMethodType, PaymentStatus, SavedCard
from payments.services.cards import card_resolve
from payments.services.customers import customer_ensure
from payments.stripe_data import as_mapping, mirror_intent, object_id

logger = logging.getLogger(__name__)


def payment_create(*, user: User, kind: PaymentKind, method: PaymentMethodType, amount: int, currency: str) -> Payment:
    """Records a payment inside the caller's transaction; no Stripe call.

    A wallet payment is final at once (``succeeded``): the caller posts its
    ledger entry in the same transaction. A card payment starts in
    ``requires_payment_method`` until the card is charged.
    """
    payment = payment_build(user=user, kind=kind, method=method, amount=amount, currency=currency)
    payment.save(force_insert=True)
    return payment


def payment_build(
    *, user: User, kind: PaymentKind, method: PaymentMethodType, amount: int, currency: str, now: datetime | None = None
) -> Payment:
    """The unsaved payment ``payment_create`` records (for a caller that inserts it itself)."""
    now = now or timezone.now()
    is_wallet = method == PaymentMethodType.WALLET
    return Payment(
        request_key=current_request_key(),
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


# The unique constraint on Payment.request_key (Django's name for a unique field's constraint).
REQUEST_KEY_CONSTRAINT = "payments_payment_request_key_key"


def payment_request_clash(error: IntegrityError) -> bool:
    """Whether ``error`` is a second payment for a request that made one already (its ``request_key``)."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == REQUEST_KEY_CONSTRAINT


def payment_for_request(*, kind: PaymentKind) -> Payment | None:
    """The payment the running API request made on an earlier attempt (same Idempotency-Key), if any.

    A request run again after its first attempt died, or whose claim was released, resumes that payment
    (and its order or deposit) instead of creating a second one.
    """
    key = current_request_key()
    if key is None:
        return None
    return Payment.objects.filter(request_key=key, kind=kind).first()


def stripe_key(payment: Payment, action: str) -> str:
    """The Stripe idempotency key of an action on a payment: from the client's key and scope when there is one."""
    return f"pi-{action}-{payment.request_key or payment.pk}"


def _intent_disagrees(payment: Payment, intent: Mapping[str, Any]) -> str:
    """Why Stripe's intent is not this payment's (amount or currency differ); empty when they agree."""
    amount, currency = intent.get("amount"), intent.get("currency")
    if amount is not None and int(amount) != payment.amount:
        return f"amount: ours {payment.amount}, Stripe's {amount}"
    if currency and str(currency).lower() != payment.currency:
        return f"currency: ours {payment.currency}, Stripe's {currency}"
    return ""


def payment_flag(*, payment: Payment, reason: str) -> None:
    """Marks a payment for staff: Stripe's object disagrees with ours, so nothing moves on it."""
    logger.error("payment flagged for staff", extra={"payment": payment.pk, "reason": reason})
    if payment.flagged_reason:
        return
    payment.flagged_reason = reason[:255]
    payment.flagged_at = payment.updated_at = timezone.now()
    payment.save(update_fields=["flagged_reason", "flagged_at", "updated_at"])


_INTENT_STATUS = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "processing": PaymentStatus.PROCESSING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "canceled": PaymentStatus.CANCELED,
    # Created but not confirmed yet, or being captured: still in flight for us.
    "requires_confirmation": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.PROCESSING,
}
# From a status (key) a payment may only move to these; final statuses never change.
_ALLOWED_NEXT: dict[str, set[str]] = {
    PaymentStatus.REQUIRES_PAYMENT_METHOD: set(PaymentStatus.values),
    PaymentStatus.PROCESSING: set(PaymentStatus.values),
    PaymentStatus.REQUIRES_ACTION: set(PaymentStatus.values),
    PaymentStatus.SUCCEEDED: set(),
    # Money is the truth: a charge Stripe reports as succeeded is recorded even after we
    # gave up on it (the owner's hook then decides what the late money buys).
    PaymentStatus.CANCELED: {PaymentStatus.SUCCEEDED},
    PaymentStatus.FAILED: {PaymentStatus.SUCCEEDED},
}


def intent_outcome(intent: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Our status and fields for a PaymentIntent's current state (None: nothing to apply)."""
    status = intent.get("status")
    error = intent.get("last_payment_error") or {}
    fields: dict[str, Any] = {"stripe_charge_id": object_id(intent.get("latest_charge"))[:255]}
    if status == "requires_payment_method":
        if not error:
            return None, fields
        fields.update(
            failure_code=str(error.get("code") or "card_declined")[:64],
            decline_code=str(error.get("decline_code") or "")[:64],
            failure_message=str(error.get("message") or "")[:255],
        )
        return PaymentStatus.FAILED, fields
    ours = _INTENT_STATUS.get(str(status))
    if ours == PaymentStatus.CANCELED and error:
        fields["failure_message"] = str(error.get("message") or "")[:255]
    return ours, fields


@retry_on_contention()
def payment_sync(*, payment_id: str, intent: Any) -> Payment:
    """Applies a PaymentIntent's state to our payment; idempotent, safe in any order.

    Locks: the payment's owner through its kind's hooks (the order), then the
    payment; then the owner's ``payment_changed`` hook runs in the same
    transaction when the status changed. An intent whose amount or currency is
    not the payment's (or that belongs to another payment) flags the payment
    for staff and changes nothing else.
    """
    intent = as_mapping(intent)
    with transaction.atomic():
        payment, owner, hooks = lock_payment_with_owner(payment_id)
        mismatch = _intent_disagrees(payment, intent)
        if (
            not mismatch
            and payment.stripe_payment_intent_id
            and intent.get("id")
            not in (
                None,
                payment.stripe_payment_intent_id,
            )
        ):
            mismatch = f"payment_intent: ours {payment.stripe_payment_intent_id}, Stripe's {intent.get('id')}"
        if mismatch:
            payment_flag(payment=payment, reason=mismatch)
            return payment
        new_status, fields = intent_outcome(intent)
        changed: list[str] = []
        if not payment.stripe_payment_intent_id and intent.get("id"):
            payment.stripe_payment_intent_id = str(intent["id"])
            changed.append("stripe_payment_intent_id")
        if intent.get("client_secret") and payment.client_secret != intent["client_secret"]:
            payment.client_secret = intent["client_secret"]
            changed.append("client_secret")
        if intent.get("payment_method") and not payment.stripe_payment_method_id:
            payment.stripe_payment_method_id = object_id(intent["payment_method"])[:255]
            changed.append("stripe_payment_method_id")
        status_changed = (
            new_status is not None and new_status != payment.status and new_status in _ALLOWED_NEXT[str(payment.status)]
        )
        if status_changed and new_status is not None:
            payment.status = new_status
            changed.append("status")
            for name, value in fields.items():
                if value:
                    setattr(payment, name, value)
                    changed.append(name)
            if new_status == PaymentStatus.SUCCEEDED:
                payment.succeeded_at = timezone.now()
                changed.append("succeeded_at")
        elif fields.get("stripe_charge_id") and not payment.stripe_charge_id:
            payment.stripe_charge_id = fields["stripe_charge_id"]
            changed.append("stripe_charge_id")
        if changed:
            payment.updated_at = timezone.now()
            payment.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
        if status_changed:
            hooks.payment_changed(payment, owner)
            metrics.count_payment_on_commit(kind=payment.kind, outcome=payment.status)
    return payment


def _claim_for_charge(payment: Payment, card: SavedCard) -> bool:
    """Marks a payment ``processing`` with its card; False when another attempt owns it."""
    claimed = Payment.objects.filter(
        pk=payment.pk,
        status__in=[PaymentStatus.REQUIRES_PAYMENT_METHOD],
    ).update(status=PaymentStatus.PROCESSING, stripe_payment_method_id=card.pk, updated_at=timezone.now())
    return bool(claimed)


def card_payment_confirm(*, payment_id: str, payment_method_id: str | None) -> Payment:
    """Charges a card payment's saved card; call OUTSIDE any transaction.

    Resolves the customer and the card (the user's default when None), creates
    the PaymentIntent (idempotency key from our payment id, so a retry never
    charges twice), confirms it and applies the outcome with ``payment_sync``.
    Raises PaymentMethodInvalid (not the user's card), CardDeclined (recorded
    failed first), StripeUnavailable (the payment stays ``processing`` and is
    settled by a webhook or ``reconcile_payments``).
    """
    if gateway.in_transaction():
        raise gateway.StripeCallInTransaction("card_payment_confirm must run outside a transaction")
    payment = Payment.objects.select_related("user").get(pk=payment_id)
    if payment.method != PaymentMethodType.CARD:
        raise PaymentMethodInvalid("This payment is not a card payment.")
    if payment.status != PaymentStatus.REQUIRES_PAYMENT_METHOD:
        return payment  # already charged or being charged: never twice
    # A card that is not the user's raises PaymentMethodInvalid before anything is charged; the
    # payment stays as it is and its owner closes it (``card_payment_cancel``).
    card = card_resolve(user_id=payment.user_id, payment_method_id=payment_method_id)
    customer_id = customer_ensure(user=payment.user)
    if not _claim_for_charge(payment, card):
        return Payment.objects.get(pk=payment_id)
    return _charge(payment=payment, customer_id=customer_id, card_id=card.pk)


def card_payment_cancel(*, payment_id: str) -> Payment:
    """Stops a card payment that has not succeeded from succeeding later; call outside a transaction.

    Cancels the PaymentIntent at Stripe (idempotency key from our payment id)
    and applies Stripe's answer with ``payment_sync``; if Stripe refuses (the
    intent succeeded or failed meanwhile) its current state is applied instead.
    Raises StripeUnavailable.
    """

    payment = Payment.objects.get(pk=payment_id)
    if payment.status in FINAL_STATUSES or payment.method != PaymentMethodType.CARD:
        return payment
    if not payment.stripe_payment_intent_id:
        return payment_sync(payment_id=payment.pk, intent={"status": "canceled"})
    try:
        intent: Any = gateway.raw_call(
            stripe.PaymentIntent.cancel, payment.stripe_payment_intent_id, idempotency_key=stripe_key(payment, "cancel")
        )
    except stripe.StripeError as exc:
        if is_unavailable(exc):
            raise translate_stripe_error(exc) from exc
        intent = gateway.call(stripe.PaymentIntent.retrieve, payment.stripe_payment_intent_id)
    return payment_sync(payment_id=payment.pk, intent=intent)


def intent_create_params(payment: Payment, *, customer_id: str, card_id: str) -> dict[str, Any]:
    """What the PaymentIntent of a card payment is created with (never confirmed by the create itself).

    Reconciliation sends the same again with the same idempotency key to learn an intent whose create
    answer was lost: Stripe refuses a key reused with other parameters.
    """
    return {
        "amount": payment.amount,
        "currency": payment.currency,
        "customer": customer_id,
        "payment_method": card_id,
        "payment_method_types": ["card"],
        "metadata": {"payment_id": payment.pk, "kind": payment.kind},
    }


def _charge(*, payment: Payment, customer_id: str, card_id: str) -> Payment:
    intent_id = payment.stripe_payment_intent_id
    try:
        if not intent_id:
            intent = gateway.raw_call(
                stripe.PaymentIntent.create,
                **intent_create_params(payment, customer_id=customer_id, card_id=card_id),
                idempotency_key=stripe_key(payment, "create"),
            )
            intent_id = intent.id
            # Remember the intent before confirming: from here on Stripe can be asked for the truth.
            Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id__isnull=True).update(
                stripe_payment_intent_id=intent.id, client_secret=intent.client_secret or ""
            )
        intent = gateway.raw_call(
            stripe.PaymentIntent.confirm, intent_id, idempotency_key=stripe_key(payment, "confirm")
        )
    except stripe.StripeError as exc:
        error = translate_stripe_error(exc, param="payment_method")
        if is_unavailable(exc):
            raise error from exc
        if isinstance(error, CardDeclined | PaymentMethodInvalid):
            _record_decline(payment_id=payment.pk, intent_id=intent_id, exc=exc)
        raise error from exc
    payment = payment_sync(payment_id=payment.pk, intent=intent)
    mirror_intent(intent)
    return payment


def _record_decline(*, payment_id: str, intent_id: str | None, exc: stripe.StripeError) -> None:
    """Stores a declined attempt as ``failed`` (from Stripe's view of the intent when it answers)."""
    intent: dict[str, Any] | None = None
    if intent_id:
        try:
            intent = dict(as_mapping(gateway.raw_call(stripe.PaymentIntent.retrieve, intent_id)))
        except stripe.StripeError:
            intent = None
    error = getattr(exc, "error", None)
    if intent is None or not intent.get("last_payment_error"):
        intent = {
            **(intent or {"id": intent_id}),
            "status": "requires_payment_method",
            "last_payment_error": {
                "code": getattr(error, "code", None) or "card_declined",
                "decline_code": getattr(error, "decline_code", None),
                "message": getattr(error, "message", None) or str(exc)[:255],
            },
        }
    if intent.get("status") == "requires_payment_method":
        payment_sync(payment_id=payment_id, intent=intent)
