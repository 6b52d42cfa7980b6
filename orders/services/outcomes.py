"""What an order becomes when its payment or a refund changes: paid, closed, paid late, refunded.

The caller (payments, through ``orders.hooks``; or a cancel) holds the order's lock, then the payment's.
"""

from __future__ import annotations

import logging

from django.db.models import Sum
from django.utils import timezone

from accounts.models import Role
from accounts.services import audit_record
from catalog.locks import codes_take, stock_return, stock_take
from catalog.models import Delivery
from config.errors import InvalidStatus
from orders.models import ORDER_TRANSITIONS, Order, OrderEventType, OrderStatus
from orders.services.events import event_record
from orders.services.goods import goods_issue, goods_revoke
from orders.services.notices import receipt_due, refund_notice_on_commit
from orders.services.terms import purchase_key, purchase_legs, terms_of_product
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from wallets.availability import card_sale_legs
from wallets.ledger import Leg, ledger_post, platform_account_id, wallet_id_for
from wallets.models import AccountKind, Entry, EntryKind

logger = logging.getLogger(__name__)


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


def late_credit_key(order_id: str) -> str:
    """The ledger key of a late card payment credited to the buyer's wallet (see order_on_payment_changed)."""
    return f"late-payment:{order_id}"


def order_on_payment_changed(*, order: Order, payment: Payment) -> None:
    """Brings an order in line with its payment; safe to call any number of times.

    Called by payments (through ``orders.hooks``) with ``order`` and ``payment``
    locked (in that order), inside its transaction, after ``payment.status`` changed. Locks further: the
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
        order_close(order, to=to)


def _order_mark_paid(order: Order, payment: Payment) -> None:
    now = timezone.now()
    terms = terms_of_product(order.product_id)
    order.fulfillment = terms.fulfillment
    order.paid_at = now
    order.reserved_until = None
    order_transition(order=order, to=OrderStatus.PAID, fields=("fulfillment", "paid_at", "reserved_until"))
    ledger_post(
        kind=EntryKind.PURCHASE,
        currency=order.currency,
        reference=order.pk,
        idempotency_key=purchase_key(order.pk),
        # Card-sale income waits in the merchant's incoming account for MERCHANT_AVAILABILITY_DAYS.
        legs=card_sale_legs(
            purchase_legs(order, paid_from=platform_account_id(AccountKind.CARD_CLEARING, order.currency)),
            merchant_id=order.merchant_id,
            currency=order.currency,
        ),
        memo=f"payment {payment.pk}",
    )
    goods_issue(order=order, terms=terms)
    event_record(order, OrderEventType.PAID)
    receipt_due(order.pk)


def _order_paid_late(order: Order, payment: Payment) -> None:
    if Entry.objects.filter(idempotency_key=late_credit_key(order.pk)).exists():
        return  # already credited to the wallet
    previous = order.status
    taken = stock_take(order.product_id, order.quantity)
    if taken is not None and taken.delivery == Delivery.CODES:
        # Its codes went back to the pool when it closed; the stock counts them, so they are there.
        codes_take(product_id=order.product_id, quantity=order.quantity, order_id=order.pk)
    if taken is not None:
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
    buyer_wallet = wallet_id_for(user_id=order.buyer_id, role=Role.CUSTOMER, currency=order.currency)
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


def order_close(order: Order, *, to: OrderStatus) -> None:
    """pending → canceled/failed: the stock comes back. Caller holds the order lock."""
    order.reserved_until = None
    order_transition(order=order, to=to, fields=("reserved_until",))
    stock_return(order.product_id, order.quantity, order_id=order.pk)  # a code pool's codes too
    event_record(order, OrderEventType.CANCELED if to == OrderStatus.CANCELED else OrderEventType.FAILED)


_REFUND_RANK: dict[str, int] = {OrderStatus.PAID: 0, OrderStatus.PARTIALLY_REFUNDED: 1, OrderStatus.REFUNDED: 2}


def order_on_refund(*, order: Order, payment: Payment) -> None:
    """Sets partially_refunded / refunded from the payment's succeeded refunds; emits order.refunded.

    Called by payments with order and payment locked after a refund succeeded
    (or one that had succeeded was reversed: the status steps back, no event);
    idempotent (one event per refunded total).
    """
    refunded = (
        Refund.objects.filter(payment_id=payment.pk, status=RefundStatus.SUCCEEDED).aggregate(total=Sum("amount"))[
            "total"
        ]
        or 0
    )
    if refunded <= 0:
        to = OrderStatus.PAID
    else:
        to = OrderStatus.REFUNDED if refunded >= order.amount else OrderStatus.PARTIALLY_REFUNDED
    if order.status in _REFUND_RANK and _REFUND_RANK[to] < _REFUND_RANK[order.status]:
        # Stripe changed its mind (a refund that succeeded failed later): the order steps back.
        order.status = to
        order.updated_at = timezone.now()
        order.save(update_fields=["status", "updated_at"])
        return
    if refunded <= 0 or (order.status == OrderStatus.REFUNDED and to == OrderStatus.REFUNDED):
        return
    order_transition(order=order, to=to)
    if to == OrderStatus.REFUNDED:
        goods_revoke(order=order)  # a partial refund keeps the goods
    event_record(order, OrderEventType.REFUNDED, key_suffix=str(refunded), extra={"amount_refunded": refunded})
    refund_notice_on_commit(order.pk, refunded)
