"""Every write to orders: buying, paying, canceling, expiring, and the order events.

Lock order (see ``wallets.locks``): Order → Payment → Product → Account. The
purchase paths insert their rows first and take the hot rows (the product's
stock, then the wallets through ``ledger_post``) last, so those are held for
as short a time as possible.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from catalog.cache import catalog_cache_bump_on_commit
from catalog.locks import TakenStock, stock_return, stock_take, stock_take_sql
from catalog.models import Product
from config.db import insert_values, prepared_cursor, retry_on_contention
from config.errors import (
    CardDeclined,
    DomainError,
    InvalidStatus,
    PaymentMethodInvalid,
    PermissionDeniedError,
    StripeUnavailable,
    ValidationFailed,
)
from config.money import basis_points
from orders import webhooks
from orders.errors import (
    OnlyCustomersBuy,
    OrderNotFound,
    OrderNotPending,
    OwnProduct,
    ProductNotAvailable,
    ProductOutOfStock,
    TooManyWebhookEndpoints,
    WebhookEndpointNotFound,
)
from orders.locks import lock_order
from orders.models import (
    ORDER_TRANSITIONS,
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    Order,
    OrderEvent,
    OrderEventType,
    OrderPaymentMethod,
    OrderStatus,
    WebhookEndpoint,
)
from payments.locks import lock_payment
from payments.models import Payment, PaymentKind, PaymentStatus, Refund, RefundStatus
from payments.services import card_payment_cancel, payment_build, payment_create
from wallets.models import AccountKind, Entry, EntryKind
from wallets.services import (
    Leg,
    ledger_post,
    ledger_post_statement,
    ledger_refusal,
    platform_account_id,
    wallet_id_for,
)

logger = logging.getLogger(__name__)

MAX_WEBHOOK_ENDPOINTS = 10
DELIVERY_MAX_ATTEMPTS = 10
DELIVERY_LEASE_SECONDS = 60
DELIVERY_BACKOFF_CAP_SECONDS = 6 * 3600
ENDPOINTS_CACHE_SECONDS = 300


def order_transition(*, order: Order, to: str, fields: tuple[str, ...] = ()) -> None:
    """Moves a locked order to status ``to`` if the transition is allowed, and saves it.

    The caller holds the order's row lock. ``fields`` names other attributes the
    caller changed and wants saved in the same UPDATE.
    """
    if to not in ORDER_TRANSITIONS[order.status]:
        raise InvalidStatus(f"Order {order.id} is {order.status}; it cannot become {to}.")
    order.status = to
    order.updated_at = timezone.now()
    order.save(update_fields=["status", "updated_at", *fields])


def purchase_key(order_id: str) -> str:
    """The ledger idempotency key of an order's purchase entry: one per order, ever."""
    return f"purchase:{order_id}"


def late_credit_key(order_id: str) -> str:
    """The ledger key of a late card payment credited to the buyer's wallet (see order_on_payment_changed)."""
    return f"late-payment:{order_id}"


# --- what a product sells for ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Terms:
    """What an order copies from its product. Remembered per process: the stock
    UPDATE returns the live values and a purchase made on stale ones is redone."""

    merchant_id: str
    price: int
    currency: str
    fulfillment: str


_terms_memory: dict[str, _Terms] = {}
# dispatched_at of a new event: now, unless the merchant has a live endpoint (then NULL: to fan out).
_UNLESS_SUBSCRIBED = (
    f"CASE WHEN EXISTS (SELECT 1 FROM {WebhookEndpoint._meta.db_table}"  # noqa: S608 - our table
    " WHERE merchant_id = %s AND deleted_at IS NULL) THEN NULL ELSE %s::timestamptz END"
)
_TERMS_SQL = (
    f"SELECT merchant_id, price, currency, fulfillment FROM {Product._meta.db_table}"  # noqa: S608 - our table
    " WHERE id = %s AND is_active AND deleted_at IS NULL"
)
_TERMS_MEMORY_SIZE = 4096


def terms_forget() -> None:
    """Drops the remembered product terms (tests, after a database flush)."""
    _terms_memory.clear()


def _terms_remember(product_id: str, terms: _Terms) -> None:
    if len(_terms_memory) >= _TERMS_MEMORY_SIZE:
        _terms_memory.clear()
    _terms_memory[product_id] = terms


def _terms_for(product_id: str) -> _Terms:
    terms = _terms_memory.get(product_id)
    if terms is not None:
        return terms
    terms = _terms_read(product_id)
    if terms is None:
        raise ProductNotAvailable(param="product")
    _terms_remember(product_id, terms)
    return terms


def _terms_read(product_id: str) -> _Terms | None:
    """What a public product sells for now (None: not for sale)."""
    with prepared_cursor() as cursor:  # each product's first purchase in this process: keep it cheap
        cursor.execute(_TERMS_SQL, [product_id])
        row = cursor.fetchone()
    return None if row is None else _Terms(*row)


def _terms_taken(taken: TakenStock) -> _Terms:
    return _Terms(taken.merchant_id, taken.price, taken.currency, taken.fulfillment)


class _NoStock(Exception):
    """stock_take took nothing: rolls the purchase back, then tells why."""


class _StaleTerms(Exception):
    """The product changed since its terms were remembered: roll back, redo with these."""

    def __init__(self, terms: _Terms) -> None:
        super().__init__()
        self.terms = terms


def _no_stock_reason(product_id: str) -> DomainError:
    _terms_memory.pop(product_id, None)
    row = Product.objects.filter(pk=product_id).values_list("is_active", "deleted_at", "stock").first()
    if row is None or not row[0] or row[1] is not None:
        return ProductNotAvailable(param="product")
    return ProductOutOfStock(f"Product {product_id} has {row[2]} left.", param="quantity")


def _take_stock_for(order: Order, terms: _Terms) -> None:
    """Takes the order's stock (locks the product row) and checks the order was built on live terms."""
    taken = stock_take(order.product_id, order.quantity)
    if taken is None:
        raise _NoStock()
    live = _terms_taken(taken)
    if live != terms:
        raise _StaleTerms(live)


def _check_buy(*, buyer: User, quantity: int, terms: _Terms) -> None:
    if terms.merchant_id == buyer.pk:
        raise OwnProduct(param="product")
    if type(quantity) is not int or not 1 <= quantity <= settings.MAXIMUM_ORDER_QUANTITY:
        raise ValidationFailed(f"Quantity must be between 1 and {settings.MAXIMUM_ORDER_QUANTITY}.", param="quantity")


def _new_order(*, buyer: User, product_id: str, quantity: int, terms: _Terms, method: str, now: datetime) -> Order:
    amount = terms.price * quantity
    fee = basis_points(amount, settings.PLATFORM_FEE_BPS)
    return Order(
        buyer=buyer,
        merchant_id=terms.merchant_id,
        product_id=product_id,
        quantity=quantity,
        unit_price=terms.price,
        amount=amount,
        currency=terms.currency,
        fee=fee,
        merchant_net=amount - fee,
        payment_method=method,
        created_at=now,
        updated_at=now,
    )


def _purchase_legs(order: Order, *, paid_from: str) -> list[Leg]:
    legs = [
        Leg(paid_from, -order.amount),
        Leg(wallet_id_for(user_id=order.merchant_id, role="merchant", currency=order.currency), order.merchant_net),
        Leg(platform_account_id(AccountKind.PLATFORM_FEES, order.currency), order.fee),
    ]
    return [leg for leg in legs if leg.amount]


# --- buying --------------------------------------------------------------------------


def order_place(
    *, buyer: User, product_id: str, quantity: int = 1, payment_method: str = "wallet", card: str | None = None
) -> Order:
    """Buys ``quantity`` of a product with the buyer's wallet or a card (see the two paths below).

    Raises ProductNotAvailable (404), ProductOutOfStock (409), OwnProduct (400),
    InsufficientFunds / CardDeclined (402), StripeUnavailable (502).
    """
    if not buyer.is_customer:
        raise OnlyCustomersBuy()
    if payment_method == OrderPaymentMethod.WALLET:
        return order_buy_with_wallet(buyer=buyer, product_id=product_id, quantity=quantity)
    if payment_method == OrderPaymentMethod.CARD:
        return order_buy_with_card(buyer=buyer, product_id=product_id, quantity=quantity, card=card)
    raise ValidationFailed("payment_method must be wallet or card.", param="payment_method")


def order_buy_with_wallet(*, buyer: User, product_id: str, quantity: int = 1) -> Order:
    """One short transaction: Payment (succeeded), Order (paid, with its fulfillment)
    and its order.paid event are inserted, then the stock is taken (product row
    lock) and the purchase entry posted (wallet locks); commit. Side effect after
    commit: the event's delivery."""
    terms = _terms_for(product_id)
    for _ in range(3):
        _check_buy(buyer=buyer, quantity=quantity, terms=terms)
        try:
            return _wallet_purchase(buyer=buyer, product_id=product_id, quantity=quantity, terms=terms)
        except _StaleTerms as stale:
            terms = stale.terms
            _terms_remember(product_id, terms)
    raise InvalidStatus("The product changed while it was being bought; try again.", param="product")


@retry_on_contention()
def _wallet_purchase(*, buyer: User, product_id: str, quantity: int, terms: _Terms) -> Order:
    # Outside the transaction: ids are remembered in-process after the first call.
    buyer_wallet = wallet_id_for(user_id=buyer.pk, role=buyer.role, currency=terms.currency)
    wallet_id_for(user_id=terms.merchant_id, role="merchant", currency=terms.currency)
    now = timezone.now()
    order = _new_order(
        buyer=buyer, product_id=product_id, quantity=quantity, terms=terms, method=OrderPaymentMethod.WALLET, now=now
    )
    payment = payment_build(
        user=buyer, kind=PaymentKind.ORDER, method=OrderPaymentMethod.WALLET, amount=order.amount,
        currency=order.currency, now=now,
    )  # fmt: skip
    order.payment = payment
    order.status = OrderStatus.PAID
    order.paid_at = now
    order.fulfillment = terms.fulfillment
    one_statement = connection.vendor == "postgresql"
    # The statement itself looks whether anyone subscribed; the portable path asks the cache.
    event = _event_build(order, OrderEventType.PAID, ask_receivers=not one_statement)
    legs = _purchase_legs(order, paid_from=buyer_wallet)
    try:
        if one_statement:
            _wallet_purchase_statement(order, payment, event, legs, terms)  # its own transaction
        else:
            with transaction.atomic():
                payment.save(force_insert=True)
                order.save(force_insert=True)
                event.save(force_insert=True)
                _take_stock_for(order, terms)
                ledger_post(
                    kind=EntryKind.PURCHASE,
                    currency=order.currency,
                    reference=order.pk,
                    idempotency_key=purchase_key(order.pk),
                    legs=legs,
                )
        _event_dispatch_on_commit(event)
    except _NoStock:
        raise _no_stock_reason(product_id) from None
    return order


def _wallet_purchase_statement(
    order: Order, payment: Payment, event: OrderEvent, legs: list[Leg], terms: _Terms
) -> None:
    """The wallet purchase as one statement (PostgreSQL): the same rows, locks and lock order as
    the portable path above, as data-modifying CTEs, and its own transaction.

    The stock is taken first (product row lock, ``catalog.locks.stock_take_sql``), then, only if the
    product still sells on the terms the order was built on, the wallets move in pk order
    (``wallets.services.ledger_post_statement``); the payment, order, event and ledger rows are
    inserted by the same statement. When something did not happen the statement calls
    ``purchase_refuse`` (migration orders 0005), whose error undoes all of it; no BEGIN or COMMIT
    round trip, and the rows are locked for this one round trip only. Inside a caller's
    transaction it runs in a savepoint, so a refusal leaves the caller's work alone.
    """
    stock_sql, params = stock_take_sql(order.product_id, order.quantity)
    ledger = ledger_post_statement(
        kind=EntryKind.PURCHASE,
        currency=order.currency,
        reference=order.pk,
        idempotency_key=purchase_key(order.pk),
        legs=legs,
        after="purchase_live",
        now=order.created_at,
    )
    ctes = [
        f"purchase_taken AS ({stock_sql})",
        "purchase_live AS (SELECT 1 FROM purchase_taken"
        " WHERE merchant_id = %s AND price = %s AND currency = %s AND fulfillment = %s)",
        *ledger.ctes,
    ]
    params += [terms.merchant_id, terms.price, terms.currency, terms.fulfillment, *ledger.params]
    for name, row in (("purchase_payment", payment), ("purchase_order", order)):
        insert, values = insert_values(row)
        ctes.append(f"{name} AS ({insert})")
        params += values
    # The event goes out undispatched (its fan-out queued after commit) only if the merchant has a live endpoint.
    subscribed = (
        ("%s", [None]) if settings.ORDER_EVENTS_URL else (_UNLESS_SUBSCRIBED, [order.merchant_id, event.created_at])
    )
    insert, values = insert_values(event, computed={"dispatched_at": subscribed})
    ctes.append(f"purchase_event AS ({insert} RETURNING dispatched_at)")
    params += values
    # Every name in the statement is ours; every value is a parameter.
    wallets_moved = f"EXISTS (SELECT 1 FROM {ledger.last_wallet})" if ledger.last_wallet else "true"  # noqa: S608
    sql = (
        "WITH " + ", ".join(ctes) + " SELECT CASE"  # noqa: S608
        " WHEN NOT EXISTS (SELECT 1 FROM purchase_taken) THEN purchase_refuse('no_stock')"
        " WHEN NOT EXISTS (SELECT 1 FROM purchase_live) THEN purchase_refuse('stale_terms')"
        f" WHEN NOT {wallets_moved} THEN purchase_refuse('wallet') END,"
        " (SELECT stock FROM purchase_taken), (SELECT dispatched_at FROM purchase_event)"
    )
    try:
        own = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with own, prepared_cursor() as cursor:
            cursor.execute(sql, params)
            _, stock_left, event.dispatched_at = cursor.fetchone()
    except DatabaseError as refused:  # P0001 from purchase_refuse: the hint says why
        cause = refused.__cause__
        reason = cause.diag.message_hint if getattr(cause, "sqlstate", None) == "P0001" else None  # type: ignore[union-attr]
        if reason == "no_stock":
            raise _NoStock() from None
        if reason == "stale_terms":
            _terms_memory.pop(order.product_id, None)
            live = _terms_read(order.product_id)
            raise (_NoStock() if live is None else _StaleTerms(live)) from None
        if reason == "wallet":
            raise ledger_refusal(ledger) from None
        raise
    if stock_left is not None:
        catalog_cache_bump_on_commit()


def order_buy_with_card(*, buyer: User, product_id: str, quantity: int = 1, card: str | None = None) -> Order:
    """Reserves the stock and records the order (pending, reserved for
    ORDER_RESERVATION_MINUTES) with its card payment; commits; then charges the
    card through payments (no lock held), whose outcome comes back through
    ``order_on_payment_changed``. Returns the order as it then stands: paid, or
    pending with a client_secret when the customer must act.

    A decline fails the order and returns its stock (402). When Stripe does not
    answer (502) the order stays pending; reconciliation or expiry settles it.
    """
    from payments.services import card_payment_confirm

    terms = _terms_for(product_id)
    for _ in range(3):
        _check_buy(buyer=buyer, quantity=quantity, terms=terms)
        try:
            order = _card_reserve(buyer=buyer, product_id=product_id, quantity=quantity, terms=terms)
            break
        except _StaleTerms as stale:
            terms = stale.terms
            _terms_remember(product_id, terms)
    else:
        raise InvalidStatus("The product changed while it was being bought; try again.", param="product")

    assert order.payment_id is not None
    try:
        card_payment_confirm(payment_id=order.payment_id, payment_method_id=card)
    except (CardDeclined, PaymentMethodInvalid):
        # payments normally failed the order already (through the hook); this
        # covers a refusal raised before any PaymentIntent existed: the order
        # fails, its stock comes back, and a payment left open is closed.
        _order_close_pending(order_id=order.pk, to=OrderStatus.FAILED)
        try:
            _payment_intent_cancel(order)
        except StripeUnavailable:
            logger.warning("could not close the refused card payment", extra={"order": order.pk})
        raise
    return Order.objects.select_related("payment").get(pk=order.pk)


@retry_on_contention()
def _card_reserve(*, buyer: User, product_id: str, quantity: int, terms: _Terms) -> Order:
    now = timezone.now()
    order = _new_order(
        buyer=buyer, product_id=product_id, quantity=quantity, terms=terms, method=OrderPaymentMethod.CARD, now=now
    )
    order.reserved_until = now + timedelta(minutes=settings.ORDER_RESERVATION_MINUTES)
    try:
        with transaction.atomic():
            order.payment = payment_create(
                user=buyer, kind=PaymentKind.ORDER, method=OrderPaymentMethod.CARD, amount=order.amount,
                currency=order.currency,
            )  # fmt: skip
            order.save(force_insert=True)
            _take_stock_for(order, terms)
    except _NoStock:
        raise _no_stock_reason(product_id) from None
    return order


# --- outcomes of payments and refunds ------------------------------------------------------


def order_on_payment_changed(*, order: Order, payment: Payment) -> None:
    """Brings an order in line with its payment; safe to call any number of times.

    Called by payments with ``order`` and ``payment`` locked (in that order),
    inside its transaction, after ``payment.status`` changed. Locks further: the
    product (stock), the wallets (ledger). Side effects after commit: events.

    - succeeded, order pending → paid: fulfillment copied, purchase entry
      (card_clearing -amount, merchant +net, platform_fees +fee), order.paid.
    - failed/canceled, order pending → failed/canceled, stock back, event.
    - succeeded, order canceled/failed (its reservation ran out, or the buyer
      canceled while the card was being charged): the money is never lost. If
      the stock can be taken again the order becomes paid as above; otherwise
      the amount is credited to the buyer's wallet (a deposit entry from
      card_clearing, key ``late_credit_key``), the order stays as it is and an
      audit record ``order.late_payment_credited`` is written. Such an order is
      not refundable (it is not paid): the buyer already has the money back.
    """
    if payment.status == PaymentStatus.SUCCEEDED:
        if order.status == OrderStatus.PENDING:
            _order_mark_paid(order, payment)
        elif order.status in (OrderStatus.CANCELED, OrderStatus.FAILED):
            _order_paid_late(order, payment)
        return
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and order.status == OrderStatus.PENDING:
        to = OrderStatus.FAILED if payment.status == PaymentStatus.FAILED else OrderStatus.CANCELED
        _order_close(order, to=to)


def _order_mark_paid(order: Order, payment: Payment) -> None:
    now = timezone.now()
    order.fulfillment = Product.objects.filter(pk=order.product_id).values_list("fulfillment", flat=True).first() or ""
    order.paid_at = now
    order.reserved_until = None
    order_transition(order=order, to=OrderStatus.PAID, fields=("fulfillment", "paid_at", "reserved_until"))
    ledger_post(
        kind=EntryKind.PURCHASE,
        currency=order.currency,
        reference=order.pk,
        idempotency_key=purchase_key(order.pk),
        legs=_purchase_legs(order, paid_from=platform_account_id(AccountKind.CARD_CLEARING, order.currency)),
        memo=f"payment {payment.pk}",
    )
    _event_record(order, OrderEventType.PAID)


def _order_paid_late(order: Order, payment: Payment) -> None:
    if Entry.objects.filter(idempotency_key=late_credit_key(order.pk)).exists():
        return  # already credited to the wallet
    previous = order.status
    if stock_take(order.product_id, order.quantity) is not None:
        _order_mark_paid(order, payment)
        logger.warning("card payment succeeded after the order closed; stock taken again, order paid",
                       extra={"order": order.pk, "payment": payment.pk, "was": previous})  # fmt: skip
        audit_record(
            actor=None,
            action="order.paid_late",
            object_type="order",
            object_id=order.pk,
            data={"payment": payment.pk, "was": previous},
        )
        return
    buyer_wallet = wallet_id_for(user_id=order.buyer_id, role="customer", currency=order.currency)
    entry = ledger_post(
        kind=EntryKind.DEPOSIT,
        currency=order.currency,
        reference=order.pk,
        idempotency_key=late_credit_key(order.pk),
        legs=[
            Leg(platform_account_id(AccountKind.CARD_CLEARING, order.currency), -order.amount),
            Leg(buyer_wallet, order.amount),
        ],
        memo=f"card payment {payment.pk} succeeded after order {order.pk} was {previous}: credited to the wallet",
    )
    logger.error("card payment succeeded after the order closed and its stock is gone; credited to the wallet",
                 extra={"order": order.pk, "payment": payment.pk, "entry": entry.pk})  # fmt: skip
    audit_record(
        actor=None,
        action="order.late_payment_credited",
        object_type="order",
        object_id=order.pk,
        data={"payment": payment.pk, "entry": entry.pk, "amount": order.amount, "currency": order.currency},
    )


def _order_close(order: Order, *, to: str) -> None:
    """pending → canceled/failed: the stock comes back. Caller holds the order lock."""
    order.reserved_until = None
    order_transition(order=order, to=to, fields=("reserved_until",))
    stock_return(order.product_id, order.quantity)
    _event_record(order, OrderEventType.CANCELED if to == OrderStatus.CANCELED else OrderEventType.FAILED)


def order_on_refund(*, order: Order, payment: Payment) -> None:
    """Sets partially_refunded / refunded from the payment's succeeded refunds; emits order.refunded.

    Called by payments with order and payment locked after a refund succeeded;
    idempotent (one event per refunded total).
    """
    refunded = (
        Refund.objects.filter(payment_id=payment.pk, status=RefundStatus.SUCCEEDED).aggregate(total=Sum("amount"))[
            "total"
        ]
        or 0
    )
    if refunded <= 0:
        return
    to = OrderStatus.REFUNDED if refunded >= order.amount else OrderStatus.PARTIALLY_REFUNDED
    if order.status == OrderStatus.REFUNDED and to == OrderStatus.REFUNDED:
        return
    order_transition(order=order, to=to)
    _event_record(order, OrderEventType.REFUNDED, key_suffix=str(refunded), extra={"amount_refunded": refunded})


# --- canceling and expiring -------------------------------------------------------------


def order_cancel(*, buyer: User, order_id: str) -> Order:
    """The buyer cancels a pending order: the card's PaymentIntent is canceled
    first (no lock held), then the order, and its stock comes back. Raises
    OrderNotFound, OrderNotPending (also when the card succeeded meanwhile)."""
    order = Order.objects.filter(pk=order_id, buyer=buyer).first()
    if order is None:
        raise OrderNotFound(param="id")
    if order.status != OrderStatus.PENDING:
        raise OrderNotPending(f"Order {order.pk} is {order.status}; only a pending order can be canceled.")
    _order_cancel_pending(order)
    order = Order.objects.select_related("payment").get(pk=order.pk)
    if order.status != OrderStatus.CANCELED:
        raise OrderNotPending(f"Order {order.pk} became {order.status} before it could be canceled.")
    return order


def _order_cancel_pending(order: Order) -> None:
    _payment_intent_cancel(order)
    _order_close_pending(order_id=order.pk, to=OrderStatus.CANCELED)


def _payment_intent_cancel(order: Order) -> None:
    """Stops a card payment from succeeding later, through payments (it may call Stripe: no lock held).

    Raises StripeUnavailable. Any other refusal (the intent already succeeded or
    failed) is left to the lock-and-re-read step that follows.
    """
    if order.payment_method != OrderPaymentMethod.CARD or order.payment_id is None:
        return
    try:
        card_payment_cancel(payment_id=order.payment_id)
    except StripeUnavailable:
        raise
    except DomainError as exc:
        logger.info("payment intent not canceled", extra={"order": order.pk, "reason": exc.message})


@retry_on_contention()
def _order_close_pending(*, order_id: str, to: str) -> Order:
    """Locks the order and its payment; a still-pending order is closed (stock back),
    unless its payment succeeded meanwhile, which pays it instead."""
    with transaction.atomic():
        order = lock_order(order_id)
        if order.status != OrderStatus.PENDING:
            return order
        payment = lock_payment(order.payment_id) if order.payment_id else None
        if payment is not None and payment.status == PaymentStatus.SUCCEEDED:
            order_on_payment_changed(order=order, payment=payment)
        else:
            _order_close(order, to=to)
    return order


def orders_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """Cancels pending orders whose reservation ran out; their stock comes back.

    Each order: its PaymentIntent is canceled through payments first (no lock),
    then the order is locked and re-read; one whose card succeeded meanwhile is
    paid instead. Returns how many were canceled.
    """
    now = now or timezone.now()
    expired = list(
        Order.objects.filter(status=OrderStatus.PENDING, reserved_until__lt=now).order_by("reserved_until")[:limit]
    )
    canceled = 0
    for order in expired:
        try:
            _order_cancel_pending(order)
        except StripeUnavailable:
            logger.warning("Stripe unavailable; order expiry retried next run", extra={"order": order.pk})
            continue
        except Exception:
            logger.exception("order expiry failed", extra={"order": order.pk})
            continue
        if Order.objects.filter(pk=order.pk, status=OrderStatus.CANCELED).exists():
            canceled += 1
    return canceled


# --- order events (outbox) and their delivery ------------------------------------------


def order_event_object(order: Order) -> dict[str, Any]:
    """The order as subscribers see it: the merchant's sale view (never the fulfillment)."""
    from orders.serializers import SaleSerializer

    return {"object": "order", **SaleSerializer().to_representation(order)}


def _event_record(
    order: Order,
    event_type: str,
    *,
    key_suffix: str = "",
    extra: dict[str, Any] | None = None,
    check_existing: bool = True,
) -> OrderEvent | None:
    """Writes the event in the caller's transaction; fans it out after commit."""
    key = _event_key(order, event_type, key_suffix)
    if check_existing and OrderEvent.objects.filter(key=key).exists():
        return None
    event = _event_build(order, event_type, key_suffix=key_suffix, extra=extra)
    event.save(force_insert=True)
    _event_dispatch_on_commit(event)
    return event


def _event_key(order: Order, event_type: str, key_suffix: str = "") -> str:
    return f"{order.pk}:{event_type}:{key_suffix}"


def _event_build(
    order: Order,
    event_type: str,
    *,
    key_suffix: str = "",
    extra: dict[str, Any] | None = None,
    ask_receivers: bool = True,
) -> OrderEvent:
    """The unsaved event; already marked dispatched when nobody is subscribed
    (``ask_receivers=False``: the caller's statement decides)."""
    now = timezone.now()
    event = OrderEvent(
        order=order,
        merchant_id=order.merchant_id,
        type=event_type,
        key=_event_key(order, event_type, key_suffix),
        created_at=now,
    )
    data = order_event_object(order)
    data.update(extra or {})
    event.payload = {"id": event.pk, "type": event_type, "created": int(now.timestamp()), "data": {"object": data}}
    if ask_receivers and not (settings.ORDER_EVENTS_URL or _merchant_has_endpoints(order.merchant_id)):
        # Nobody to tell: recorded as dispatched, and no task is queued.
        event.dispatched_at = now
    return event


def _event_dispatch_on_commit(event: OrderEvent) -> None:
    """Once the caller commits, fans the saved event out (unless nobody was subscribed)."""
    if event.dispatched_at is None:
        event_id = event.pk
        transaction.on_commit(lambda: _fan_out_enqueue(event_id))


def _endpoints_cache_key(merchant_id: str) -> str:
    return f"orders:has-webhooks:{merchant_id}"


def _merchant_has_endpoints(merchant_id: str) -> bool:
    """Whether the merchant has a live endpoint; cached (dropped when endpoints change)."""
    key = _endpoints_cache_key(merchant_id)
    try:
        cached = cache.get(key)
    except Exception:
        logger.warning("cache unavailable; assuming the merchant has webhook endpoints", exc_info=True)
        return True
    if cached is not None:
        return bool(cached)
    has = WebhookEndpoint.objects.filter(merchant_id=merchant_id, deleted_at__isnull=True).exists()
    try:
        cache.set(key, int(has), ENDPOINTS_CACHE_SECONDS)
    except Exception:
        logger.warning("cache unavailable", exc_info=True)
    return has


def _endpoints_changed_on_commit(merchant_id: str) -> None:
    def forget() -> None:
        try:
            cache.delete(_endpoints_cache_key(merchant_id))
        except Exception:
            logger.exception("could not drop the cached webhook flag; it expires on its own")

    transaction.on_commit(forget)


def _fan_out_enqueue(event_id: str) -> None:
    from orders.tasks import event_fan_out

    try:
        event_fan_out.delay(event_id)
    except Exception:
        # The order is committed: never fail the request for this. The sweep
        # (deliveries_retry_due) fans out events left undispatched.
        logger.exception("could not enqueue order event fan-out", extra={"event": event_id})


def event_fan_out(*, event_id: str) -> list[str]:
    """Creates an event's deliveries (each live endpoint of its merchant, plus
    ORDER_EVENTS_URL when set), idempotently; returns the ids of those still pending."""
    event = OrderEvent.objects.filter(pk=event_id).first()
    if event is None:
        return []
    now = timezone.now()
    deliveries = [
        EventDelivery(event=event, endpoint=endpoint, url=endpoint.url, next_attempt_at=now, created_at=now)
        for endpoint in WebhookEndpoint.objects.filter(merchant_id=event.merchant_id, deleted_at__isnull=True)
    ]
    if settings.ORDER_EVENTS_URL:
        deliveries.append(
            EventDelivery(
                event=event, endpoint=None, url=settings.ORDER_EVENTS_URL, next_attempt_at=now, created_at=now
            )
        )
    with transaction.atomic():
        EventDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OrderEvent.objects.filter(pk=event.pk, dispatched_at__isnull=True).update(dispatched_at=now)
    return list(
        EventDelivery.objects.filter(event_id=event.pk, status=DeliveryStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def delivery_backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 30 s doubling, capped at 6 h, ±10 % jitter."""
    base = getattr(settings, "ORDER_EVENTS_RETRY_BASE_SECONDS", 30)
    seconds = min(base * 2 ** max(attempts - 1, 0), DELIVERY_BACKOFF_CAP_SECONDS)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def delivery_attempt(*, delivery_id: str) -> EventDelivery | None:
    """Makes one attempt of a due delivery; None when it is not due (or taken by another worker).

    The delivery is claimed with one conditional UPDATE (a lease), the POST is
    made outside any transaction, then the attempt is recorded and the next one
    scheduled with exponential backoff, up to DELIVERY_MAX_ATTEMPTS.
    """
    now = timezone.now()
    claimed = EventDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=DELIVERY_LEASE_SECONDS), attempts=F("attempts") + 1)
    if not claimed:
        return None
    delivery = EventDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    secret = endpoint.secret if endpoint is not None else settings.ORDER_EVENTS_SECRET
    endpoint_gone = endpoint is not None and endpoint.deleted_at is not None
    if endpoint_gone:
        result = webhooks.SendResult(None, "The endpoint was deleted; nothing sent.", 0)
    else:
        result = webhooks.send(
            url=delivery.url,
            body=json.dumps(delivery.event.payload, separators=(",", ":")).encode(),
            secret=secret,
            event_id=delivery.event_id,
            delivery_id=delivery.pk,
            # Staff configured ORDER_EVENTS_URL themselves; merchant URLs are guarded.
            allow_private=endpoint is None or webhooks.private_targets_allowed(),
        )
    finished = timezone.now()
    changes: dict[str, Any] = {"last_status_code": result.status_code, "last_error": result.error[:500]}
    if result.ok:
        changes.update(status=DeliveryStatus.SUCCEEDED, delivered_at=finished)
    elif endpoint_gone or delivery.attempts >= DELIVERY_MAX_ATTEMPTS:
        changes.update(status=DeliveryStatus.FAILED)
    else:
        changes.update(next_attempt_at=finished + delivery_backoff(delivery.attempts))
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            status_code=result.status_code,
            error=result.error[:500],
            duration_ms=result.duration_ms,
            created_at=finished,
        )
        EventDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**changes)
    if not result.ok:
        logger.info(
            "order event delivery failed",
            extra={"delivery": delivery.pk, "attempt": delivery.attempts, "error": result.error},
        )
    delivery.refresh_from_db()
    return delivery


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Ids of pending deliveries whose next attempt is due."""
    now = now or timezone.now()
    return list(
        EventDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def events_undispatched(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> list[str]:
    """Events whose after-commit fan-out never ran (a lost task, a broker outage)."""
    return list(
        OrderEvent.objects.filter(dispatched_at__isnull=True, created_at__lt=timezone.now() - older_than)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


def delivery_redeliver(*, delivery_id: str, actor: User | None, enqueue: bool = True) -> None:
    """Staff: makes a delivery due again now, whatever its status, and (``enqueue``)
    queues its attempt after commit; audited. Used by the admin action."""
    with transaction.atomic():
        updated = EventDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
        )
        if not updated:
            return
        audit_record(actor=actor, action="order_event.redeliver", object_type="event_delivery", object_id=delivery_id)

        def send() -> None:
            from orders.tasks import deliver_event

            deliver_event.delay(delivery_id)

        if enqueue:
            transaction.on_commit(send)


# --- webhook endpoints --------------------------------------------------------------------


def webhook_endpoint_create(*, merchant: User, url: str) -> WebhookEndpoint:
    """Registers a URL for the merchant's order events; the returned endpoint
    carries its signing secret (show it once). Raises WebhookUrlRefused (400)."""
    if not merchant.is_merchant:
        raise PermissionDeniedError("Only merchants can register webhook endpoints.")
    url = webhooks.check_url(url.strip(), allow_private=webhooks.private_targets_allowed())
    with transaction.atomic():
        live = WebhookEndpoint.objects.filter(merchant=merchant, deleted_at__isnull=True).count()
        if live >= MAX_WEBHOOK_ENDPOINTS:
            raise TooManyWebhookEndpoints(param="url")
        endpoint = WebhookEndpoint(merchant=merchant, url=url, secret="whsec_" + secrets.token_hex(24))
        endpoint.save(force_insert=True)
        _endpoints_changed_on_commit(merchant.pk)
        audit_record(
            actor=merchant,
            action="webhook_endpoint.create",
            object_type="webhook_endpoint",
            object_id=endpoint.pk,
            data={"url": url},
        )
    return endpoint


def webhook_endpoint_delete(*, merchant: User, endpoint_id: str) -> None:
    """Stops deliveries to one of the merchant's endpoints (kept for its history). Raises WebhookEndpointNotFound."""
    with transaction.atomic():
        updated = WebhookEndpoint.objects.filter(pk=endpoint_id, merchant=merchant, deleted_at__isnull=True).update(
            deleted_at=timezone.now()
        )
        if not updated:
            raise WebhookEndpointNotFound(param="id")
        _endpoints_changed_on_commit(merchant.pk)
        audit_record(
            actor=merchant, action="webhook_endpoint.delete", object_type="webhook_endpoint", object_id=endpoint_id
        )
