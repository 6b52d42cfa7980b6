"""Buying: the wallet purchase (one statement) and the card purchase (reserve, commit, charge).

Lock order: Order → Payment → Product → Account; the hot rows (stock, then wallets) are taken last, briefly.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from catalog.cache import catalog_cache_bump_on_commit
from catalog.locks import codes_take_sql, stock_take_sql
from catalog.models import Delivery
from config import metrics
from config.db import insert_values, prepared_cursor, retry_on_contention
from config.errors import CardDeclined, InvalidStatus, PaymentMethodInvalid, StripeUnavailable, ValidationFailed
from config.request_keys import current_request_is_new
from orders.errors import OnlyCustomersBuy
from orders.models import Order, OrderEvent, OrderEventType, OrderStatus, WebhookEndpoint
from orders.services.cancel import order_close_pending, payment_intent_cancel
from orders.services.events import event_build, event_dispatch_on_commit
from orders.services.goods import NewGoods, goods_from_plan, goods_insert_sql, goods_plan
from orders.services.notices import receipt_due_sql, receipts_kick
from orders.services.terms import (
    NoStock,
    StaleTerms,
    Terms,
    check_buy,
    no_stock_reason,
    order_build,
    purchase_key,
    purchase_legs,
    stock_take_for,
    terms_drop,
    terms_for,
    terms_read,
    terms_remember,
)
from payments.models import Payment, PaymentKind, PaymentMethodType
from payments.services.charges import (
    card_payment_confirm,
    payment_build,
    payment_create,
    payment_for_request,
    payment_request_clash,
)
from wallets.ledger import Leg, ledger_post_statement, ledger_refusal, wallet_id_for
from wallets.models import EntryKind

logger = logging.getLogger(__name__)

# dispatched_at of a new event: now, unless the merchant has a live endpoint (then NULL: to fan out).
_UNLESS_SUBSCRIBED = (
    f"CASE WHEN EXISTS (SELECT 1 FROM {WebhookEndpoint._meta.db_table}"  # noqa: S608 - our table
    " WHERE merchant_id = %s AND deleted_at IS NULL) THEN NULL ELSE %s::timestamptz END"
)


def order_place(
    *,
    buyer: User,
    product_id: str,
    quantity: int = 1,
    payment_method: str = PaymentMethodType.WALLET,
    card: str | None = None,
) -> Order:
    """Buys ``quantity`` of a product with the buyer's wallet or a card (see the two paths below).

    Raises ProductNotAvailable (404), ProductOutOfStock (409), OwnProduct (400),
    InsufficientFunds / CardDeclined (402), StripeUnavailable (502).
    """
    if not buyer.is_customer:
        raise OnlyCustomersBuy()
    # A claim inserted just now knows of no earlier attempt: no look-up (one query less per purchase).
    earlier = None if current_request_is_new() else _order_for_request(buyer)
    if earlier is not None:  # this request's first attempt made it: resume it, never a second order
        return _resumed(earlier, card)
    if payment_method not in (PaymentMethodType.WALLET, PaymentMethodType.CARD):
        raise ValidationFailed("payment_method must be wallet or card.", param="payment_method")
    try:
        if payment_method == PaymentMethodType.WALLET:
            return order_buy_with_wallet(buyer=buyer, product_id=product_id, quantity=quantity)
        return order_buy_with_card(buyer=buyer, product_id=product_id, quantity=quantity, card=card)
    except IntegrityError as clash:
        # The request made its payment before although its claim is new (the claim was lost, or the key
        # came back after it expired): the payment's unique request_key refused a second; resume the first.
        earlier = _order_for_request(buyer) if payment_request_clash(clash) else None
        if earlier is None:
            raise
        return _resumed(earlier, card)


def _resumed(order: Order, card: str | None) -> Order:
    return order if order.payment_method == PaymentMethodType.WALLET else _card_charge(order, card)


def order_buy_with_wallet(*, buyer: User, product_id: str, quantity: int = 1) -> Order:
    """One short transaction: Payment (succeeded), Order (paid, with its fulfillment)
    and its order.paid event are inserted, then the stock is taken (product row
    lock) and the purchase entry posted (wallet locks); commit. Side effect after
    commit: the event's delivery."""
    terms = terms_for(product_id)
    for _ in range(3):
        check_buy(buyer=buyer, quantity=quantity, terms=terms)
        try:
            return _wallet_purchase(buyer=buyer, product_id=product_id, quantity=quantity, terms=terms)
        except StaleTerms as stale:
            terms = stale.terms
            terms_remember(product_id, terms)
    raise InvalidStatus("The product changed while it was being bought; try again.", param="product")


@retry_on_contention()
def _wallet_purchase(*, buyer: User, product_id: str, quantity: int, terms: Terms) -> Order:
    # Outside the transaction: ids are remembered in-process after the first call.
    buyer_wallet = wallet_id_for(user_id=buyer.pk, role=buyer.role, currency=terms.currency)
    wallet_id_for(user_id=terms.merchant_id, role=Role.MERCHANT, currency=terms.currency)
    now = timezone.now()
    order = order_build(
        buyer=buyer, product_id=product_id, quantity=quantity, terms=terms, method=PaymentMethodType.WALLET, now=now
    )
    payment = payment_build(
        user=buyer, kind=PaymentKind.ORDER, method=PaymentMethodType.WALLET, amount=order.amount,
        currency=order.currency, now=now,
    )  # fmt: skip
    order.payment = payment
    order.status = OrderStatus.PAID
    order.paid_at = now
    order.fulfillment = terms.fulfillment
    event = event_build(order, OrderEventType.PAID, ask_receivers=False)  # the statement asks
    legs = purchase_legs(order, paid_from=buyer_wallet)
    goods = goods_plan(quantity=quantity, terms=terms, now=now)
    try:
        codes = _wallet_purchase_statement(order, payment, event, legs, terms, goods)  # its own transaction
    except NoStock:
        raise no_stock_reason(product_id) from None
    # The response shows the goods without reading them back, and a download's link this once.
    order.fresh_goods = goods_from_plan(order, terms, goods, codes)  # type: ignore[attr-defined]
    order.download_tokens = goods.tokens  # type: ignore[attr-defined]
    event_dispatch_on_commit(event)
    transaction.on_commit(receipts_kick)  # the statement made the receipt due
    metrics.count_wallet_purchase_on_commit()
    return order


def _wallet_purchase_statement(
    order: Order, payment: Payment, event: OrderEvent, legs: list[Leg], terms: Terms, goods: NewGoods
) -> list[str] | None:
    """The wallet purchase as one statement: data-modifying CTEs in their own transaction, with the
    lock order Product → Account.

    The stock is taken first (product row lock, ``catalog.locks.stock_take_sql``), then, only if the
    product still sells on the terms the order was built on, the wallets move in pk order
    (``wallets.ledger.ledger_post_statement``); the payment, order, event and ledger rows are
    inserted by the same statement, and so are the goods: for a code pool the codes are taken right
    after the stock (``catalog.locks.codes_take_sql``, lowest ids first, behind the product row lock)
    and a statement that saw fewer codes than the stock promised (added after its snapshot) is redone.
    When something did not happen the statement calls
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
    codes = None
    if terms.delivery == Delivery.CODES:
        codes_sql, codes_params = codes_take_sql(
            product_id=order.product_id, quantity=order.quantity, order_id=order.pk, gate="purchase_live"
        )
        ctes.append(f"purchase_codes AS ({codes_sql})")
        params += codes_params
        codes = "purchase_codes"
    goods_sql, goods_params = goods_insert_sql(order, terms, goods, codes=codes)
    ctes.append(f"purchase_goods AS ({goods_sql})")
    params += goods_params
    receipt_sql, receipt_params = receipt_due_sql(order.pk, order.created_at)
    ctes.append(f"purchase_receipt AS ({receipt_sql})")
    params += receipt_params
    # The event goes out undispatched (its fan-out queued after commit) only if the merchant has a live endpoint.
    subscribed = (
        ("%s", [None]) if settings.ORDER_EVENTS_URL else (_UNLESS_SUBSCRIBED, [order.merchant_id, event.created_at])
    )
    insert, values = insert_values(event, computed={"dispatched_at": subscribed})
    ctes.append(f"purchase_event AS ({insert} RETURNING dispatched_at)")
    params += values
    # Every name in the statement is ours; every value is a parameter.
    wallets_moved = f"EXISTS (SELECT 1 FROM {ledger.last_wallet})" if ledger.last_wallet else "true"  # noqa: S608
    codes_short = " WHEN (SELECT count(*) FROM purchase_codes) < %s THEN purchase_refuse('codes_short')"
    codes_out = "(SELECT array_agg(code ORDER BY id) FROM purchase_codes)" if codes else "NULL"
    sql = (
        "WITH " + ", ".join(ctes) + " SELECT CASE"  # noqa: S608
        " WHEN NOT EXISTS (SELECT 1 FROM purchase_taken) THEN purchase_refuse('no_stock')"
        " WHEN NOT EXISTS (SELECT 1 FROM purchase_live) THEN purchase_refuse('stale_terms')"
        f"{codes_short if codes else ''} WHEN NOT {wallets_moved} THEN purchase_refuse('wallet') END,"
        f" (SELECT stock FROM purchase_taken), (SELECT dispatched_at FROM purchase_event), {codes_out}"
    )
    if codes:
        params.append(order.quantity)
    try:
        own = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with own, prepared_cursor() as cursor:
            cursor.execute(sql, params)
            _, stock_left, event.dispatched_at, taken_codes = cursor.fetchone()
    except DatabaseError as refused:  # P0001 from purchase_refuse: the hint says why
        cause = refused.__cause__
        reason = cause.diag.message_hint if getattr(cause, "sqlstate", None) == "P0001" else None  # type: ignore[union-attr]
        if reason == "no_stock":
            raise NoStock() from None
        if reason == "stale_terms":
            terms_drop(order.product_id)
            live = terms_read(order.product_id)
            raise (NoStock() if live is None else StaleTerms(live)) from None
        if reason == "wallet":
            raise ledger_refusal(ledger) from None
        if reason == "codes_short":  # codes were added after this statement's snapshot: redo it
            raise StaleTerms(terms) from None
        raise
    if stock_left is not None:
        catalog_cache_bump_on_commit()
    return taken_codes


def order_buy_with_card(*, buyer: User, product_id: str, quantity: int = 1, card: str | None = None) -> Order:
    """Reserves the stock and records the order (pending, reserved for
    ORDER_RESERVATION_MINUTES) with its card payment; commits; then charges the
    card through payments (no lock held), whose outcome comes back through
    ``order_on_payment_changed``. Returns the order as it then stands: paid, or
    pending with a client_secret when the customer must act.

    A decline fails the order and returns its stock (402). When Stripe does not
    answer (502) the order stays pending; reconciliation or expiry settles it.
    """
    terms = terms_for(product_id)
    for _ in range(3):
        check_buy(buyer=buyer, quantity=quantity, terms=terms)
        try:
            order = _card_reserve(buyer=buyer, product_id=product_id, quantity=quantity, terms=terms)
            break
        except StaleTerms as stale:
            terms = stale.terms
            terms_remember(product_id, terms)
    else:
        raise InvalidStatus("The product changed while it was being bought; try again.", param="product")

    return _card_charge(order, card)


def _order_for_request(buyer: User) -> Order | None:
    payment = payment_for_request(kind=PaymentKind.ORDER)
    if payment is None or payment.user_id != buyer.pk:
        return None
    return Order.objects.select_related("payment").filter(payment=payment).first()


def _card_charge(order: Order, card: str | None) -> Order:
    """Charges a reserved card order (a no-op once charged); its errors name the order."""
    assert order.payment_id is not None
    try:
        card_payment_confirm(payment_id=order.payment_id, payment_method_id=card)
    except (CardDeclined, PaymentMethodInvalid) as refused:
        refused.extra.setdefault("order", order.pk)
        # payments normally failed the order already (through the hook); this
        # covers a refusal raised before any PaymentIntent existed: the order
        # fails, its stock comes back, and a payment left open is closed.
        order_close_pending(order_id=order.pk, to=OrderStatus.FAILED)
        try:
            payment_intent_cancel(order)
        except StripeUnavailable:
            logger.warning("could not close the refused card payment", extra={"order": order.pk})
        raise
    except StripeUnavailable as unavailable:
        unavailable.extra.setdefault("order", order.pk)
        raise
    return Order.objects.select_related("payment").get(pk=order.pk)


@retry_on_contention()
def _card_reserve(*, buyer: User, product_id: str, quantity: int, terms: Terms) -> Order:
    now = timezone.now()
    order = order_build(
        buyer=buyer, product_id=product_id, quantity=quantity, terms=terms, method=PaymentMethodType.CARD, now=now
    )
    order.reserved_until = now + timedelta(minutes=settings.ORDER_RESERVATION_MINUTES)
    try:
        with transaction.atomic():
            order.payment = payment_create(
                user=buyer, kind=PaymentKind.ORDER, method=PaymentMethodType.CARD, amount=order.amount,
                currency=order.currency,
            )  # fmt: skip
            order.save(force_insert=True)
            stock_take_for(order, terms)
    except NoStock:
        raise no_stock_reason(product_id) from None
    return order
