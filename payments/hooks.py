"""The registry through which payments tell the app that owns a payment (orders, deposits) what happened.

Keyed by ``PaymentKind``; each owning app registers its ``PaymentHooks`` in its ``ready()``, so payments
never imports the apps above it. A kind with no registration is an error, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from accounts.models import Role, User
from payments.models import Payment, PaymentKind
from wallets.ledger import Leg, wallet_id_for

OwnerT = TypeVar("OwnerT")


class PaymentHooksMissing(LookupError):
    """No app registered hooks for a payment kind (a wiring error: its app's ``ready()`` did not run)."""


@dataclass(frozen=True, slots=True)
class DisputeTerms:
    """Whose money a dispute freezes and how a lost one is paid for."""

    holder: str  # the wallet account whose money is held
    wanted: int  # how much of it to hold
    fee: int  # the platform fee a lost dispute takes back before the adjustments account pays the rest


@dataclass(frozen=True, slots=True)
class RefundHooks(Generic[OwnerT]):
    """What a refund needs from the owner of a refundable payment; every callable runs in payments' transaction."""

    find: Callable[[str], OwnerT | None]  # the owner by its id, unlocked (None: no such owner)
    check_refunder: Callable[[OwnerT, User], None]  # raises PermissionDeniedError/NotFound
    lock_refundable: Callable[[str], tuple[OwnerT, str]]  # locks the owner; (owner, its payment id); InvalidStatus
    parts: Callable[[OwnerT, Payment, int], tuple[int, int]]  # (fee part, net part) of a new refund's amount
    legs: Callable[[OwnerT, Payment, int, int, int], list[Leg]]  # the reversal of (amount, fee part, net part)
    settled: Callable[[OwnerT, Payment], None]  # a refund of the owner's payment succeeded


@dataclass(frozen=True, slots=True)
class PaymentHooks(Generic[OwnerT]):
    """What payments calls on the owner of a payment of one kind."""

    # Locks the owner (before the payment: the global lock order) by the payment's id; None when
    # the owner takes its own lock later (a deposit, after the payment) or there is none.
    lock_owner: Callable[[str], OwnerT | None]
    # The payment's status changed; called with the owner and the payment locked, in their transaction.
    payment_changed: Callable[[Payment, OwnerT | None], None]
    dispute_terms: Callable[[Payment, OwnerT | None], DisputeTerms]
    refunds: RefundHooks[OwnerT] | None = None  # None: payments of this kind are never refunded
    # A dispute on the payment was lost: called once per dispute, by the service that resolves it, with the
    # owner and the payment locked, in its transaction (an order revokes its goods). None: nothing to do.
    dispute_lost: Callable[[Payment, OwnerT | None], None] | None = None


_registry: dict[PaymentKind, PaymentHooks[Any]] = {}


def register(kind: PaymentKind, hooks: PaymentHooks[Any]) -> None:
    """Registers the owner's hooks for ``kind`` (from the owning app's ``ready()``; again replaces)."""
    _registry[PaymentKind(kind)] = hooks


def hooks_for(kind: str) -> PaymentHooks[Any]:
    """The hooks of a payment kind; raises PaymentHooksMissing when no app registered them."""
    try:
        return _registry[PaymentKind(kind)]
    except (KeyError, ValueError) as exc:
        raise PaymentHooksMissing(f"no payment hooks registered for kind {kind!r}") from exc


def refund_hooks_for(kind: str) -> RefundHooks[Any]:
    """The refund hooks of a payment kind; raises PaymentHooksMissing when it has none."""
    refunds = hooks_for(kind).refunds
    if refunds is None:
        raise PaymentHooksMissing(f"payments of kind {kind!r} are not refundable")
    return refunds


def payer_dispute_terms(payment: Payment) -> DisputeTerms:
    """A dispute on a payment with no merchant behind it freezes the payer's own wallet, the whole amount."""
    holder = wallet_id_for(user_id=payment.user_id, role=Role.CUSTOMER, currency=payment.currency)
    return DisputeTerms(holder=holder, wanted=payment.amount, fee=0)
