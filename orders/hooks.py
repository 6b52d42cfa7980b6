"""The hooks orders registers with payments (``PaymentKind.ORDER``): its lock, its outcomes, its refund and
dispute facts (a lost dispute revokes the goods). Called inside payments' transaction; lock order
Order → Payment → Refund → Dispute → Account.
"""

from __future__ import annotations

from django.db.models import Sum

from accounts.models import Role, User
from config.errors import InvalidStatus, NotFound, PermissionDeniedError
from config.money import proportional
from orders.locks import lock_order
from orders.models import PAID_STATUSES, Order
from orders.services.goods import goods_revoke
from orders.services.outcomes import order_on_payment_changed, order_on_refund
from payments import hooks
from payments.hooks import DisputeTerms, PaymentHooks, RefundHooks, payer_dispute_terms
from payments.models import Payment, PaymentKind, PaymentMethodType, Refund, RefundStatus
from wallets.availability import income_release_locked
from wallets.ledger import Leg, platform_account_id, wallet_id_for
from wallets.models import AccountKind


def _lock_owner(payment_id: str) -> Order | None:
    order_id = Order.objects.filter(payment_id=payment_id).values_list("pk", flat=True).first()
    return None if order_id is None else lock_order(order_id)


def _payment_changed(payment: Payment, order: Order | None) -> None:
    if order is not None:
        order_on_payment_changed(order=order, payment=payment)


def _dispute_terms(payment: Payment, order: Order | None) -> DisputeTerms:
    """A dispute on an order freezes the merchant's net; a lost one takes back the platform fee first."""
    if order is None:
        return payer_dispute_terms(payment)
    income_release_locked(order=order)  # card-sale income still waiting becomes available, so it can be held
    holder = wallet_id_for(user_id=order.merchant_id, role=Role.MERCHANT, currency=payment.currency)
    return DisputeTerms(holder=holder, wanted=order.merchant_net, fee=order.fee)


def _find(order_id: str) -> Order | None:
    return Order.objects.filter(pk=order_id).first()


def _check_refunder(order: Order, requested_by: User) -> None:
    if requested_by.is_staff:
        return
    if requested_by.role != Role.MERCHANT:
        raise PermissionDeniedError("Only the merchant who sold it and staff can refund an order.")
    if order.merchant_id != requested_by.pk:
        raise NotFound("No such order.")


def _lock_refundable(order_id: str) -> tuple[Order, str]:
    order = lock_order(order_id)
    if order.payment_id is None or order.status not in PAID_STATUSES:
        raise InvalidStatus(f"Order {order.pk} is {order.status}; only paid orders can be refunded.")
    return order, order.payment_id


def _refund_parts(order: Order, payment: Payment, amount: int) -> tuple[int, int]:
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


def _refund_legs(order: Order, payment: Payment, amount: int, fee_part: int, net_part: int) -> list[Leg]:
    """The buyer (wallet, or card clearing) gets ``amount``; the merchant gives the net part, the platform the fee."""
    currency = payment.currency
    if payment.method == PaymentMethodType.WALLET:
        back_to = wallet_id_for(user_id=order.buyer_id, role=Role.CUSTOMER, currency=currency)
    else:
        back_to = platform_account_id(AccountKind.CARD_CLEARING, currency)
    legs = [Leg(back_to, amount)]
    if net_part and payment.method == PaymentMethodType.CARD:
        # What the refund takes back of card-sale income still waiting is made available first (order locked).
        income_release_locked(order=order, amount=net_part)
    if net_part:
        legs.append(Leg(wallet_id_for(user_id=order.merchant_id, role=Role.MERCHANT, currency=currency), -net_part))
    if fee_part:
        legs.append(Leg(platform_account_id(AccountKind.PLATFORM_FEES, currency), -fee_part))
    return legs


def _refund_settled(order: Order, payment: Payment) -> None:
    order_on_refund(order=order, payment=payment)


def _dispute_lost(payment: Payment, order: Order | None) -> None:
    """A lost dispute takes the goods back as a full refund does (the same service); order and payment locked."""
    if order is not None:
        goods_revoke(order=order)


ORDER_PAYMENT_HOOKS: PaymentHooks[Order] = PaymentHooks(
    lock_owner=_lock_owner,
    payment_changed=_payment_changed,
    dispute_terms=_dispute_terms,
    dispute_lost=_dispute_lost,
    refunds=RefundHooks(
        find=_find,
        check_refunder=_check_refunder,
        lock_refundable=_lock_refundable,
        parts=_refund_parts,
        legs=_refund_legs,
        settled=_refund_settled,
    ),
)


def register() -> None:
    """Called from ``OrdersConfig.ready()``."""
    hooks.register(PaymentKind.ORDER, ORDER_PAYMENT_HOOKS)
