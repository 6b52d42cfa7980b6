"""Every write to payments, refunds, disputes, saved cards and Stripe events.

Stripe is never called inside a transaction or while a row lock is held:
lock, mark pending, commit; call Stripe with an idempotency key; lock again,
re-read, finish (``payments.gateway`` refuses calls inside a transaction).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import requests
import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from config.db import retry_on_contention
from config.errors import (
    AlreadyRefunded,
    CardDeclined,
    InvalidStatus,
    NotFound,
    PaymentMethodInvalid,
    PermissionDeniedError,
    RefundExceedsPayment,
    ValidationFailed,
)
from config.money import proportional
from orders.locks import lock_order
from orders.models import Order
from payments import gateway
from payments.errors import is_unavailable, translate_stripe_error
from payments.locks import lock_dispute, lock_payment, lock_refund, lock_stripe_customer
from payments.models import FINAL_PAYMENT_STATUSES as FINAL_STATUSES
from payments.models import (
    Dispute,
    DisputeStatus,
    Payment,
    PaymentMethodType,
    PaymentStatus,
    Refund,
    RefundStatus,
    SavedCard,
    StripeCustomer,
    StripeEvent,
    StripeEventStatus,
)
from wallets.locks import lock_accounts
from wallets.models import AccountKind, EntryKind
from wallets.services import Leg, deposit_on_payment_changed, ledger_post, platform_account_id, wallet_id_for

logger = logging.getLogger(__name__)

LOCAL_ACCOUNT_ID = "acct_local"
WEBHOOK_ENDPOINT_ID = "we_platform"


def payment_create(*, user: User, kind: str, method: str, amount: int, currency: str) -> Payment:
    """Records a payment inside the caller's transaction; no Stripe call.

    A wallet payment is final at once (``succeeded``): the caller posts its
    ledger entry in the same transaction. A card payment starts in
    ``requires_payment_method`` until the card is charged.
    """
    payment = payment_build(user=user, kind=kind, method=method, amount=amount, currency=currency)
    payment.save(force_insert=True)
    return payment


def payment_build(
    *, user: User, kind: str, method: str, amount: int, currency: str, now: datetime | None = None
) -> Payment:
    """The unsaved payment ``payment_create`` records (for a caller that inserts it itself)."""
    now = now or timezone.now()
    is_wallet = method == PaymentMethodType.WALLET
    return Payment(
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


# --- setup -------------------------------------------------------------------


def stripe_setup(*, base_url: str = "http://127.0.0.1:8000", register: bool = True) -> tuple[Any, str]:
    """Prepares dj-stripe's rows and the webhook endpoint; idempotent.

    Returns the dj-stripe WebhookEndpoint and its URL path. Against the local
    fake it creates the owner Account row dj-stripe cannot fetch there and
    registers the endpoint with the fake so it delivers events.
    """
    from djstripe.models import Account, APIKey, WebhookEndpoint

    secret_key = settings.STRIPE_SECRET_KEY
    local = gateway.using_local_fake()
    with transaction.atomic():
        apikey, _ = APIKey.objects.get_or_create_by_api_key(secret_key)
        if local:
            account, _ = Account.objects.get_or_create(
                id=LOCAL_ACCOUNT_ID,
                defaults={"livemode": False, "stripe_data": {"id": LOCAL_ACCOUNT_ID, "object": "account"}},
            )
            if apikey.djstripe_owner_account_id != account.id:
                apikey.djstripe_owner_account = account
                apikey.save()
    if not local and apikey.djstripe_owner_account_id is None:
        apikey.refresh_account()

    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.filter(id=WEBHOOK_ENDPOINT_ID).first()
        if endpoint is None:
            endpoint = WebhookEndpoint(
                id=WEBHOOK_ENDPOINT_ID,
                livemode=settings.STRIPE_LIVE_MODE,
                enabled_events=["*"],
                status="enabled",
                api_version="",
                url=base_url,
            )
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
        endpoint.url = base_url.rstrip("/") + path
        endpoint.secret = settings.STRIPE_WEBHOOK_SECRET
        # No owner account: dj-stripe then takes the default key without two look-ups per
        # webhook request (our callback needs neither the account nor a key).
        endpoint.djstripe_owner_account_id = None
        endpoint.djstripe_tolerance = settings.DJSTRIPE_WEBHOOK_TOLERANCE
        endpoint.save()

    if local and register:
        response = requests.post(
            f"{settings.STRIPE_API_BASE}/_config/webhooks/{endpoint.id}",
            data={"url": endpoint.url, "secret": endpoint.secret},
            timeout=settings.STRIPE_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
    return endpoint, path


# --- customers ---------------------------------------------------------------


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
        except Exception:
            logger.warning("could not delete a duplicate stripe customer", extra={"customer": customer.id})
        return str(winner)
    _mirror_customer(user=user, customer=customer)
    return str(customer.id)


def _mirror_customer(*, user: User, customer: Any) -> None:
    """dj-stripe's Customer row for the user (subscriber = user), for the admin; best effort."""
    from djstripe.models import Customer

    try:
        mirrored = Customer.sync_from_stripe_data(_plain(customer), api_key=gateway.api_key())
        if mirrored.subscriber_id != user.pk:
            mirrored.subscriber = user
            mirrored.save(update_fields=["subscriber"])
    except Exception:
        logger.exception("could not mirror stripe customer", extra={"customer": customer.get("id")})


# --- saved cards -------------------------------------------------------------


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
        PaymentMethod.sync_from_stripe_data(_plain(method), api_key=gateway.api_key())
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


def _resolve_card(*, user_id: str, payment_method_id: str | None) -> SavedCard:
    if payment_method_id is None:
        card = _default_card(user_id)
        if card is None:
            raise PaymentMethodInvalid("No saved card to charge; add one first.", param="payment_method")
        return card
    card = SavedCard.objects.filter(pk=payment_method_id, user_id=user_id).first()
    if card is None:
        raise PaymentMethodInvalid("This card is not one of your saved cards.", param="payment_method")
    return card


def _object_id(value: Any) -> str:
    """The id of a Stripe reference that may be an id or an expanded object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(value["id"])
    except (KeyError, TypeError):
        return str(getattr(value, "id", "") or "")


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain JSON-able data (what dj-stripe stores)."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict(for_json=True) if to_dict is not None else dict(obj)


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    return obj if isinstance(obj, Mapping) else dict(obj)


# --- card payments -----------------------------------------------------------

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


def _intent_outcome(intent: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Our status and fields for a PaymentIntent's current state (None: nothing to apply)."""
    status = intent.get("status")
    error = intent.get("last_payment_error") or {}
    fields: dict[str, Any] = {"stripe_charge_id": _object_id(intent.get("latest_charge"))[:255]}
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


def _owner_hook(payment: Payment, order: Order | None) -> None:
    """Tells the order or the deposit that its payment changed (same transaction, rows locked)."""
    if payment.kind == "order":
        if order is None:
            return
        from orders import services as order_services  # a cycle: orders.services imports this module

        order_services.order_on_payment_changed(order=order, payment=payment)
    else:
        deposit_on_payment_changed(payment=payment)


def _lock_payment_with_owner(payment_id: str) -> tuple[Payment, Order | None]:
    """Locks the payment's order (if any) then the payment: the global lock order."""

    order = None
    order_id = Order.objects.filter(payment_id=payment_id).values_list("pk", flat=True).first()
    if order_id is not None:
        order = lock_order(order_id)
    return lock_payment(payment_id), order


@retry_on_contention()
def payment_sync(*, payment_id: str, intent: Any) -> Payment:
    """Applies a PaymentIntent's state to our payment; idempotent, safe in any order.

    Locks: the payment's order (kind ``order``), then the payment; then the
    owner's hook (``order_on_payment_changed`` or ``deposit_on_payment_changed``)
    runs in the same transaction when the status changed.
    """
    intent = _as_mapping(intent)
    with transaction.atomic():
        payment, order = _lock_payment_with_owner(payment_id)
        new_status, fields = _intent_outcome(intent)
        changed: list[str] = []
        if not payment.stripe_payment_intent_id and intent.get("id"):
            payment.stripe_payment_intent_id = str(intent["id"])
            changed.append("stripe_payment_intent_id")
        if intent.get("client_secret") and payment.client_secret != intent["client_secret"]:
            payment.client_secret = intent["client_secret"]
            changed.append("client_secret")
        if intent.get("payment_method") and not payment.stripe_payment_method_id:
            payment.stripe_payment_method_id = _object_id(intent["payment_method"])[:255]
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
            _owner_hook(payment, order)
    return payment


def _claim_for_charge(payment: Payment, card: SavedCard) -> bool:
    """Marks a payment ``processing`` with its card; False when another attempt owns it."""
    claimed = Payment.objects.filter(
        pk=payment.pk,
        status__in=[PaymentStatus.REQUIRES_PAYMENT_METHOD],
    ).update(status=PaymentStatus.PROCESSING, stripe_payment_method_id=card.pk, updated_at=timezone.now())
    return bool(claimed)


def _mirror_intent(intent: Any) -> None:
    """dj-stripe's PaymentIntent and Charge rows, for the admin; best effort, never fatal."""
    from djstripe.models import PaymentIntent

    try:
        PaymentIntent.sync_from_stripe_data(_plain(intent), api_key=gateway.api_key())
    except Exception:
        logger.warning("could not mirror payment intent", extra={"intent": intent.get("id")}, exc_info=True)


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
    card = _resolve_card(user_id=payment.user_id, payment_method_id=payment_method_id)
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
            stripe.PaymentIntent.cancel, payment.stripe_payment_intent_id, idempotency_key=f"pi-cancel-{payment.pk}"
        )
    except stripe.StripeError as exc:
        if is_unavailable(exc):
            raise translate_stripe_error(exc) from exc
        intent = gateway.call(stripe.PaymentIntent.retrieve, payment.stripe_payment_intent_id)
    return payment_sync(payment_id=payment.pk, intent=intent)


def _charge(*, payment: Payment, customer_id: str, card_id: str) -> Payment:
    intent_id = payment.stripe_payment_intent_id
    try:
        if not intent_id:
            intent = gateway.raw_call(
                stripe.PaymentIntent.create,
                amount=payment.amount,
                currency=payment.currency,
                customer=customer_id,
                payment_method=card_id,
                payment_method_types=["card"],
                metadata={"payment_id": payment.pk, "kind": payment.kind},
                idempotency_key=f"pi-create-{payment.pk}",
            )
            intent_id = intent.id
            # Remember the intent before confirming: from here on Stripe can be asked for the truth.
            Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id__isnull=True).update(
                stripe_payment_intent_id=intent.id, client_secret=intent.client_secret or ""
            )
        intent = gateway.raw_call(stripe.PaymentIntent.confirm, intent_id, idempotency_key=f"pi-confirm-{payment.pk}")
    except stripe.StripeError as exc:
        error = translate_stripe_error(exc, param="payment_method")
        if is_unavailable(exc):
            raise error from exc
        if isinstance(error, CardDeclined | PaymentMethodInvalid):
            _record_decline(payment_id=payment.pk, intent_id=intent_id, exc=exc)
        raise error from exc
    payment = payment_sync(payment_id=payment.pk, intent=intent)
    _mirror_intent(intent)
    return payment


def _record_decline(*, payment_id: str, intent_id: str | None, exc: stripe.StripeError) -> None:
    """Stores a declined attempt as ``failed`` (from Stripe's view of the intent when it answers)."""
    intent: dict[str, Any] | None = None
    if intent_id:
        try:
            intent = dict(_as_mapping(gateway.raw_call(stripe.PaymentIntent.retrieve, intent_id)))
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


# --- refunds -----------------------------------------------------------------


def refund_key(refund_id: str) -> str:
    """The ledger key of a refund's reversal: one per refund, ever."""
    return f"refund:{refund_id}"


def refund_release_key(refund_id: str) -> str:
    """The ledger key that undoes a refund's reversal when Stripe refused the refund."""
    return f"refund-failed:{refund_id}"


def _refund_parts(*, order: Order, payment: Payment, amount: int) -> tuple[int, int]:
    """(fee_part, net_part) of a new refund, with cumulative rounding.

    The fee reversed so far plus this part equals the order's fee times the
    share of the payment refunded after this refund, rounded once: every
    refund of an order together reverse exactly ``Order.fee`` and
    ``Order.merchant_net``. The caller holds the payment's row lock.
    """

    reversed_fee = (
        Refund.objects.filter(payment_id=payment.pk)
        .exclude(status=RefundStatus.FAILED)
        .aggregate(total=Sum("fee_reversed"))["total"]
        or 0
    )
    fee_target = proportional(order.fee, payment.amount_refunded + amount, order.amount)
    fee_part = max(0, min(amount, fee_target - reversed_fee))
    return fee_part, amount - fee_part


def _refund_legs(*, order: Order, payment: Payment, amount: int, fee_part: int, net_part: int) -> list[Any]:
    currency = payment.currency
    if payment.method == PaymentMethodType.WALLET:
        back_to = wallet_id_for(user_id=order.buyer_id, role="customer", currency=currency)
    else:
        back_to = platform_account_id(AccountKind.CARD_CLEARING, currency)
    legs = [Leg(back_to, amount)]
    if net_part:
        legs.append(Leg(wallet_id_for(user_id=order.merchant_id, role="merchant", currency=currency), -net_part))
    if fee_part:
        legs.append(Leg(platform_account_id(AccountKind.PLATFORM_FEES, currency), -fee_part))
    return legs


def _check_refunder(*, order: Order, requested_by: User) -> None:
    if requested_by.is_staff:
        return
    if requested_by.role != "merchant":
        raise PermissionDeniedError("Only the merchant who sold it and staff can refund an order.")
    if order.merchant_id != requested_by.pk:
        raise NotFound("No such order.")


def _order_refunded_hook(*, order: Order, payment: Payment) -> None:
    from orders import services as order_services  # a cycle: orders.services imports this module

    order_services.order_on_refund(order=order, payment=payment)


def refund_create(*, order_id: str, amount: int | None, reason: str, requested_by: User) -> Any:
    """Refunds an order fully (``amount`` None: what is left) or partly; call outside a transaction.

    Wallet payment: the money goes back to the buyer's wallet in one
    transaction. Card payment: the amount is reserved and the reversal posted
    under lock, committed, then Stripe is asked (idempotency key from the
    refund id); a refusal releases both. Either way the merchant's net and the
    platform fee are reversed proportionally. Locks: Order → Payment → Refund →
    wallet accounts. Raises NotFound, PermissionDeniedError, InvalidStatus,
    AlreadyRefunded, RefundExceedsPayment, InsufficientFunds (merchant), and
    for cards CardDeclined/StripeUnavailable (the latter leaves it pending).
    """

    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.", param="order")
    _check_refunder(order=order, requested_by=requested_by)
    refund = _refund_reserve(order_id=order_id, amount=amount, reason=reason, requested_by=requested_by)
    if refund.status != "pending":
        return refund
    return _refund_at_stripe(refund_id=refund.pk)


@retry_on_contention()
def _refund_reserve(*, order_id: str, amount: int | None, reason: str, requested_by: User) -> Any:
    with transaction.atomic():
        order = lock_order(order_id)
        if order.payment_id is None or order.status not in ("paid", "partially_refunded", "refunded"):
            raise InvalidStatus(f"Order {order.pk} is {order.status}; only paid orders can be refunded.")
        payment = lock_payment(order.payment_id)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise InvalidStatus(f"Payment {payment.pk} is {payment.status}; only succeeded payments can be refunded.")
        left = payment.amount - payment.amount_refunded
        if left <= 0:
            raise AlreadyRefunded(f"Order {order.pk} is already fully refunded.")
        amount = left if amount is None else amount
        if amount > left:
            raise RefundExceedsPayment(f"Only {left} of {payment.amount} is left to refund.", param="amount")
        fee_part, net_part = _refund_parts(order=order, payment=payment, amount=amount)
        is_wallet = payment.method == PaymentMethodType.WALLET
        now = timezone.now()
        refund = Refund(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            status=RefundStatus.SUCCEEDED if is_wallet else RefundStatus.PENDING,
            reason=reason[:255],
            requested_by=requested_by,
            fee_reversed=fee_part,
            net_reversed=net_part,
            created_at=now,
            updated_at=now,
        )
        refund.save(force_insert=True)
        payment.amount_refunded += amount
        payment.updated_at = now
        payment.save(update_fields=["amount_refunded", "updated_at"])
        # Raises InsufficientFunds when the merchant cannot give the net back: all of this rolls back.
        ledger_post(
            kind=EntryKind.REFUND,
            currency=payment.currency,
            reference=refund.pk,
            idempotency_key=refund_key(refund.pk),
            memo=f"order {order.pk}",
            legs=_refund_legs(order=order, payment=payment, amount=amount, fee_part=fee_part, net_part=net_part),
        )
        if requested_by.is_staff:
            audit_record(
                actor=requested_by,
                action="refund.create",
                object_type="refund",
                object_id=refund.pk,
                data={"order": order.pk, "amount": amount, "currency": payment.currency, "reason": reason[:255]},
            )
        if is_wallet:
            _order_refunded_hook(order=order, payment=payment)
    return refund


def _refund_at_stripe(*, refund_id: str) -> Any:
    """Asks Stripe for a reserved card refund (idempotency key from the refund id), then finishes it."""

    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    try:
        stripe_refund = gateway.raw_call(
            stripe.Refund.create,
            payment_intent=refund.payment.stripe_payment_intent_id,
            amount=refund.amount,
            metadata={"refund_id": refund.pk, "payment_id": refund.payment_id},
            idempotency_key=f"refund-{refund.pk}",
        )
    except stripe.StripeError as exc:
        error = translate_stripe_error(exc)
        if is_unavailable(exc):
            raise error from exc  # stays pending: reconcile_payments asks again with the same key
        refund_finish(refund_id=refund.pk, stripe_refund=None, failure=str(getattr(exc, "user_message", "") or exc))
        raise error from exc
    return refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)


@retry_on_contention()
def refund_finish(*, refund_id: str, stripe_refund: Any, failure: str = "") -> Any:
    """Applies Stripe's answer to a pending card refund; idempotent.

    ``succeeded`` (or Stripe's ``pending``, which card refunds settle from):
    the order learns it through ``order_on_refund``. ``failed``/``canceled`` or
    a refusal (``stripe_refund`` None): the reservation and the reversal are
    released. Locks: Order → Payment → Refund → wallet accounts.
    """

    payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
    order_id = Order.objects.filter(payment_id=payment_id).values_list("pk", flat=True).first()
    with transaction.atomic():
        order = lock_order(order_id) if order_id else None
        payment = lock_payment(payment_id)
        refund = lock_refund(refund_id)
        if refund.status != RefundStatus.PENDING:
            return refund
        stripe_status = (stripe_refund or {}).get("status")
        if stripe_refund is not None and stripe_refund.get("id") and not refund.stripe_refund_id:
            refund.stripe_refund_id = stripe_refund["id"]
        now = timezone.now()
        if stripe_status in ("succeeded", "pending", "requires_action"):
            if stripe_status != "succeeded":
                refund.updated_at = now
                refund.save(update_fields=["stripe_refund_id", "updated_at"])
                return refund
            refund.status = RefundStatus.SUCCEEDED
            refund.updated_at = now
            refund.save(update_fields=["status", "stripe_refund_id", "updated_at"])
            if order is not None:
                _order_refunded_hook(order=order, payment=payment)
            return refund
        # Refused, failed or canceled: give back what was reserved and reversed.
        refund.status = RefundStatus.FAILED
        refund.failure_message = (failure or str((stripe_refund or {}).get("failure_reason") or "refund failed"))[:255]
        refund.updated_at = now
        refund.save(update_fields=["status", "stripe_refund_id", "failure_message", "updated_at"])
        payment.amount_refunded -= refund.amount
        payment.updated_at = now
        payment.save(update_fields=["amount_refunded", "updated_at"])
        if order is not None:
            legs = _refund_legs(
                order=order,
                payment=payment,
                amount=refund.amount,
                fee_part=refund.fee_reversed,
                net_part=refund.net_reversed,
            )
            ledger_post(
                kind=EntryKind.ADJUSTMENT,
                currency=refund.currency,
                reference=refund.pk,
                idempotency_key=refund_release_key(refund.pk),
                memo=f"refund {refund.pk} refused by Stripe: reversal undone",
                legs=[type(leg)(leg.account_id, -leg.amount) for leg in legs],
            )
        return refund


# --- disputes ----------------------------------------------------------------


def _dispute_holder(*, payment: Payment, order: Order | None) -> tuple[str, int]:
    """The wallet whose money a dispute freezes, and how much: the merchant's net, or a deposit's amount."""

    if order is not None:
        return wallet_id_for(user_id=order.merchant_id, role="merchant", currency=payment.currency), order.merchant_net
    return wallet_id_for(user_id=payment.user_id, role="customer", currency=payment.currency), payment.amount


@retry_on_contention()
def dispute_open(*, payment_id: str, stripe_dispute_id: str, amount: int, reason: str = "") -> Any:
    """Records a chargeback and freezes the merchant's net for the order (once per Stripe dispute).

    Ledger ``dispute_hold``: merchant wallet -held (held +held), platform
    disputes +held; a merchant with less than the net has what there is held
    (``Dispute.held_amount``). Locks: Order → Payment → wallet account.
    """

    with transaction.atomic():
        payment, order = _lock_payment_with_owner(payment_id)
        existing = Dispute.objects.filter(stripe_dispute_id=stripe_dispute_id).first()
        if existing is not None:
            return existing
        holder, wanted = _dispute_holder(payment=payment, order=order)
        dispute = Dispute(
            payment=payment,
            stripe_dispute_id=stripe_dispute_id,
            amount=min(amount, payment.amount) if amount > 0 else payment.amount,
            currency=payment.currency,
            reason=reason[:64],
        )
        dispute.save(force_insert=True)
        wallet = lock_accounts([holder])[holder]
        held = max(0, min(wanted, wallet.balance))
        if held:
            ledger_post(
                kind=EntryKind.DISPUTE_HOLD,
                currency=payment.currency,
                reference=dispute.pk,
                idempotency_key=f"dispute-hold:{dispute.pk}",
                memo=f"dispute {stripe_dispute_id} on payment {payment.pk}",
                legs=[
                    Leg(holder, -held, held=held),
                    Leg(platform_account_id(AccountKind.DISPUTES, payment.currency), held),
                ],
            )
            dispute.held_amount = held
            dispute.save(update_fields=["held_amount"])
    return dispute


@retry_on_contention()
def dispute_resolve(*, dispute_id: str, outcome: str, actor: User | None) -> Any:
    """Ends an open dispute: ``won`` gives the held money back; ``lost`` lets the disputed amount go.

    Lost: the amount leaves through card clearing, paid by what was held, the
    platform fee of the order and, for any shortfall, the platform's
    adjustments account. Audited. Locks: Order → Payment → Dispute → wallet account.
    """

    if outcome not in (DisputeStatus.WON, DisputeStatus.LOST):
        raise ValidationFailed("Outcome must be won or lost.", param="outcome")
    payment_id = Dispute.objects.values_list("payment_id", flat=True).filter(pk=dispute_id).first()
    if payment_id is None:
        raise NotFound("No such dispute.")
    with transaction.atomic():
        payment, order = _lock_payment_with_owner(payment_id)
        dispute = lock_dispute(dispute_id)
        if dispute.status != DisputeStatus.OPEN:
            if dispute.status == outcome:
                return dispute
            raise InvalidStatus(f"Dispute {dispute.pk} is already {dispute.status}.")
        holder, _ = _dispute_holder(payment=payment, order=order)
        held = dispute.held_amount
        currency = dispute.currency
        disputes_account = platform_account_id(AccountKind.DISPUTES, currency)
        if outcome == DisputeStatus.WON:
            if held:
                ledger_post(
                    kind=EntryKind.DISPUTE_RELEASED,
                    currency=currency,
                    reference=dispute.pk,
                    idempotency_key=f"dispute-released:{dispute.pk}",
                    memo=f"dispute {dispute.stripe_dispute_id} won",
                    legs=[Leg(holder, held, held=-held), Leg(disputes_account, -held)],
                )
        else:
            legs = [Leg(platform_account_id(AccountKind.CARD_CLEARING, currency), dispute.amount)]
            if held:
                legs += [Leg(holder, 0, held=-held), Leg(disputes_account, -held)]
            rest = dispute.amount - held
            fee_part = min(rest, order.fee) if order is not None else 0
            if fee_part > 0:
                legs.append(Leg(platform_account_id(AccountKind.PLATFORM_FEES, currency), -fee_part))
            if rest - fee_part > 0:
                legs.append(Leg(platform_account_id(AccountKind.ADJUSTMENTS, currency), -(rest - fee_part)))
            ledger_post(
                kind=EntryKind.DISPUTE_LOST,
                currency=currency,
                reference=dispute.pk,
                idempotency_key=f"dispute-lost:{dispute.pk}",
                memo=f"dispute {dispute.stripe_dispute_id} lost",
                legs=legs,
            )
        dispute.status = outcome
        dispute.resolved_by = actor
        dispute.resolved_at = timezone.now()
        dispute.save(update_fields=["status", "resolved_by", "resolved_at"])
        audit_record(
            actor=actor,
            action=f"dispute.{outcome}",
            object_type="dispute",
            object_id=dispute.pk,
            data={"payment": payment.pk, "amount": dispute.amount, "held_amount": held, "currency": currency},
        )
    return dispute


# --- Stripe events -----------------------------------------------------------


def _payment_for_intent(intent: Mapping[str, Any]) -> Payment | None:
    payment = Payment.objects.filter(stripe_payment_intent_id=intent.get("id")).first()
    if payment is not None:
        return payment
    payment_id = (intent.get("metadata") or {}).get("payment_id")
    if not payment_id:
        return None
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None or payment.stripe_payment_intent_id not in (None, "", intent.get("id")):
        return None
    return payment


def _retrieve_or_payload(fn: Any, object_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Stripe's current view of an object (events may arrive in any order); the signed payload if Stripe
    does not know the object (the local fake has no disputes)."""
    try:
        return _as_mapping(gateway.raw_call(fn, object_id))
    except stripe.StripeError as exc:
        if exc.http_status == 404:
            return payload
        raise


def _on_payment_intent_event(event: Any) -> None:
    intent = _retrieve_or_payload(stripe.PaymentIntent.retrieve, event.object_id, event.payload)
    payment = _payment_for_intent(intent)
    if payment is None:
        logger.info("payment intent event for no payment of ours", extra={"event_id": event.pk})
        return
    payment_sync(payment_id=payment.pk, intent=intent)
    _mirror_intent(intent)


def _payment_for_charge(charge: Mapping[str, Any]) -> Payment | None:
    payment = Payment.objects.filter(stripe_charge_id=charge.get("id")).first() if charge.get("id") else None
    intent_id = _object_id(charge.get("payment_intent"))
    if payment is None and intent_id:
        payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first()
    return payment


def _on_charge_refunded_event(event: Any) -> None:
    charge = _retrieve_or_payload(stripe.Charge.retrieve, event.object_id, event.payload)
    payment = _payment_for_charge(charge)
    if payment is None:
        return
    pending = Refund.objects.filter(payment=payment, status=RefundStatus.PENDING).select_related("payment")
    for refund in pending:
        if refund.stripe_refund_id:
            stripe_refund = _retrieve_or_payload(stripe.Refund.retrieve, str(refund.stripe_refund_id), {})
        else:
            stripe_refund = _find_stripe_refund(refund) or {}
        if stripe_refund:
            refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)


def _on_refund_updated_event(event: Any) -> None:
    stripe_refund = _retrieve_or_payload(stripe.Refund.retrieve, event.object_id, event.payload)
    refund = Refund.objects.filter(stripe_refund_id=stripe_refund.get("id")).first()
    if refund is None:
        refund_id = (stripe_refund.get("metadata") or {}).get("refund_id")
        refund = Refund.objects.filter(pk=refund_id).first() if refund_id else None
    if refund is not None:
        refund_finish(refund_id=refund.pk, stripe_refund=stripe_refund)


def _dispute_payment(dispute: Mapping[str, Any]) -> Payment | None:
    charge_id = _object_id(dispute.get("charge"))
    intent_id = _object_id(dispute.get("payment_intent"))
    payment = Payment.objects.filter(stripe_charge_id=charge_id).first() if charge_id else None
    if payment is None and intent_id:
        payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first()
    if payment is None and charge_id:
        stripe_charge = _retrieve_or_payload(stripe.Charge.retrieve, str(charge_id), {})
        payment = _payment_for_charge(stripe_charge) if stripe_charge else None
    return payment


def _on_dispute_event(event: Any) -> None:
    dispute_data = _retrieve_or_payload(stripe.Dispute.retrieve, event.object_id, event.payload)
    payment = _dispute_payment(dispute_data)
    if payment is None:
        logger.info("dispute for no payment of ours", extra={"event_id": event.pk})
        return
    dispute = dispute_open(
        payment_id=payment.pk,
        stripe_dispute_id=str(dispute_data.get("id") or event.object_id),
        amount=int(dispute_data.get("amount") or payment.amount),
        reason=str(dispute_data.get("reason") or ""),
    )
    stripe_status = dispute_data.get("status")
    if event.type == "charge.dispute.closed" and stripe_status in ("won", "lost"):
        outcome = DisputeStatus.WON if stripe_status == "won" else DisputeStatus.LOST
        if Dispute.objects.filter(pk=dispute.pk, status=DisputeStatus.OPEN).exists():
            dispute_resolve(dispute_id=dispute.pk, outcome=outcome, actor=None)


_EVENT_HANDLERS = {
    "payment_intent.succeeded": _on_payment_intent_event,
    "payment_intent.payment_failed": _on_payment_intent_event,
    "payment_intent.canceled": _on_payment_intent_event,
    "payment_intent.processing": _on_payment_intent_event,
    "payment_intent.requires_action": _on_payment_intent_event,
    "charge.refunded": _on_charge_refunded_event,
    "charge.refund.updated": _on_refund_updated_event,
    "charge.dispute.created": _on_dispute_event,
    "charge.dispute.closed": _on_dispute_event,
}


def stripe_event_process(*, event_id: str) -> Any:
    """Applies one claimed Stripe event; a processed event is never applied again.

    Handlers re-read the object from Stripe and apply its current state with
    idempotent services, so duplicates and any delivery order end the same.
    A failure is recorded (status ``failed``, ``last_error``) and re-raised
    for the task to retry. Call outside a transaction.
    """

    event = StripeEvent.objects.get(pk=event_id)
    if event.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
        return event
    handler = _EVENT_HANDLERS.get(event.type)
    try:
        if handler is not None:
            handler(event)
    except Exception as exc:
        StripeEvent.objects.filter(pk=event_id).exclude(status=StripeEventStatus.PROCESSED).update(
            status=StripeEventStatus.FAILED,
            attempts=F("attempts") + 1,
            last_error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}",
        )
        raise
    StripeEvent.objects.filter(pk=event_id).update(
        status=StripeEventStatus.PROCESSED if handler else StripeEventStatus.IGNORED,
        attempts=F("attempts") + 1,
        last_error="",
        processed_at=timezone.now(),
    )
    event.refresh_from_db()
    return event


# --- reconciliation ----------------------------------------------------------


def payment_reconcile(*, payment_id: str) -> Payment:
    """Settles a card payment left in flight by asking Stripe; call outside a transaction.

    No intent recorded: it was never confirmed, so nothing was charged and the
    payment is canceled. An intent never confirmed is canceled at Stripe.
    Otherwise Stripe's state is applied with ``payment_sync``.
    """
    payment = Payment.objects.get(pk=payment_id)
    if payment.status in FINAL_STATUSES:
        return payment
    if not payment.stripe_payment_intent_id:
        return payment_sync(payment_id=payment.pk, intent={"status": "canceled"})
    intent: Any = gateway.raw_call(stripe.PaymentIntent.retrieve, payment.stripe_payment_intent_id)
    if intent.get("status") == "requires_confirmation":
        intent = gateway.raw_call(stripe.PaymentIntent.cancel, intent.id, idempotency_key=f"pi-cancel-{payment.pk}")
    payment = payment_sync(payment_id=payment.pk, intent=intent)
    _mirror_intent(intent)
    return payment


def refund_reconcile(*, refund_id: str) -> Any:
    """Settles a pending card refund: asks Stripe again with the same idempotency key, or re-reads it."""

    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.stripe_refund_id:
        return refund_finish(
            refund_id=refund.pk, stripe_refund=gateway.raw_call(stripe.Refund.retrieve, refund.stripe_refund_id)
        )
    found = _find_stripe_refund(refund)
    if found is not None:
        return refund_finish(refund_id=refund.pk, stripe_refund=found)
    return _refund_at_stripe(refund_id=refund.pk)


def _find_stripe_refund(refund: Any) -> Mapping[str, Any] | None:
    """Stripe's refund made for ours (matched by metadata) when its answer never reached us."""
    intent_id = refund.payment.stripe_payment_intent_id
    if not intent_id:
        return None
    listed: Any = gateway.raw_call(stripe.Refund.list, payment_intent=intent_id, limit=100)
    for candidate in listed.data:
        if (candidate.get("metadata") or {}).get("refund_id") == refund.pk:
            return _as_mapping(candidate)
    return None


def payments_reconcile(*, min_age_seconds: int | None = None) -> dict[str, int]:
    """Settles every card payment and refund in flight for longer than ``min_age_seconds``."""

    age = settings.STRIPE_RECONCILE_AFTER_SECONDS if min_age_seconds is None else min_age_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    counts = {"payments": 0, "refunds": 0, "errors": 0}
    stuck = Payment.objects.filter(
        method=PaymentMethodType.CARD,
        status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION],
        updated_at__lte=cutoff,
    ).values_list("pk", flat=True)
    pending = Refund.objects.filter(status=RefundStatus.PENDING, updated_at__lte=cutoff).values_list("pk", flat=True)
    for kind, ids, reconcile in (
        ("payments", stuck, lambda pk: payment_reconcile(payment_id=pk)),
        ("refunds", pending, lambda pk: refund_reconcile(refund_id=pk)),
    ):
        for pk in list(ids[:500]):
            try:
                reconcile(pk)
                counts[kind] += 1
            except Exception:  # one stuck row never stops the others; it is tried again next run
                counts["errors"] += 1
                logger.warning("could not reconcile", extra={"kind": kind, "id": pk}, exc_info=True)
    return counts
