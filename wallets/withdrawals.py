"""Payouts from a wallet: the request (funds held at once) and the staff decision (paid or released).

Locks: Withdrawal → the wallet account (``ledger_post``). Every decision is audited.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.roles import Perm, four_eyes_needed, staff_require
from accounts.services import audit_record
from config.db import retry_on_contention
from config.errors import FourEyesRequired, InsufficientFunds, NotFound, ValidationFailed
from config.queue import task_named
from wallets.availability import withdrawable_amount
from wallets.errors import AmountOutsideLimits, WithdrawalNotPending
from wallets.ledger import Leg, ledger_post, platform_account_id, wallet_id_for
from wallets.locks import lock_accounts, lock_withdrawal
from wallets.models import WITHDRAWAL_OPEN_STATUSES, AccountKind, EntryKind, Withdrawal, WithdrawalStatus


@retry_on_contention()
def withdrawal_request(*, user: User, amount: int) -> Withdrawal:
    """Asks for a payout: the amount leaves the wallet's balance and is held at once.

    Locks: the wallet account (through ``ledger_post``). Raises ``LimitExceeded`` (outside the
    withdrawal limits) and ``InsufficientFunds`` (the withdrawable balance is below ``amount``: card
    top-ups still within DEPOSIT_COOLING_OFF_HOURS can be spent but not withdrawn).
    """
    AmountOutsideLimits.check(amount, settings.MINIMUM_WITHDRAWAL, settings.MAXIMUM_WITHDRAWAL, "withdrawal")
    currency = settings.PLATFORM_CURRENCY
    with transaction.atomic():
        account_id = wallet_id_for(user_id=user.pk, role=user.role, currency=currency)
        now = timezone.now()
        if settings.DEPOSIT_COOLING_OFF_HOURS > 0:
            wallet = lock_accounts([account_id])[account_id]  # ledger_post below takes the same lock again
            withdrawable = withdrawable_amount(balance=wallet.balance, account_id=account_id, at=now)
            if amount > withdrawable:
                raise InsufficientFunds(
                    f"Withdrawable balance {withdrawable} is less than {amount} "
                    f"(card top-ups can be withdrawn {settings.DEPOSIT_COOLING_OFF_HOURS} h after they land).",
                    param="amount",
                )
        withdrawal = Withdrawal(
            user=user,
            account_id=account_id,
            amount=amount,
            currency=currency,
            created_at=now,
            updated_at=now,
        )
        withdrawal.save(force_insert=True)
        ledger_post(
            kind=EntryKind.WITHDRAWAL_HOLD,
            currency=currency,
            reference=withdrawal.pk,
            idempotency_key=f"withdrawal_hold:{withdrawal.pk}",
            legs=[
                Leg(account_id, -amount, held=amount),
                Leg(platform_account_id(AccountKind.WITHDRAWALS_IN_FLIGHT, currency), amount),
            ],
        )
    return withdrawal


def _reason_required(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A money decision needs a reason.", param="reason")
    return reason[:255]


def _withdrawal_lock(withdrawal_id: str) -> Withdrawal:
    try:
        withdrawal = lock_withdrawal(withdrawal_id)
    except Withdrawal.DoesNotExist as exc:
        raise NotFound(f"No withdrawal {withdrawal_id}.", param="withdrawal") from exc
    if withdrawal.status not in WITHDRAWAL_OPEN_STATUSES:
        raise WithdrawalNotPending(f"Withdrawal {withdrawal.pk} is {withdrawal.status}.")
    return withdrawal


def _withdrawal_first_approval(withdrawal: Withdrawal, actor: User, reason: str) -> Withdrawal:
    now = timezone.now()
    withdrawal.status = WithdrawalStatus.AWAITING_SECOND_APPROVAL
    withdrawal.first_approved_by = actor
    withdrawal.first_approved_at = now
    withdrawal.first_approval_reason = reason
    withdrawal.updated_at = now
    withdrawal.save(update_fields=["status", "first_approved_by", "first_approved_at", "first_approval_reason",
                                   "updated_at"])  # fmt: skip
    audit_record(
        actor=actor,
        action="withdrawal.approve_first",
        object_type="withdrawal",
        object_id=withdrawal.pk,
        data={"amount": withdrawal.amount, "currency": withdrawal.currency, "reason": reason},
    )
    return withdrawal


def _withdrawal_decide(*, withdrawal_id: str, actor: User | None, approve: bool, reason: str) -> Withdrawal:
    actor = staff_require(actor, Perm.DECIDE_WITHDRAWALS)
    reason = _reason_required(reason)
    with transaction.atomic():
        withdrawal = _withdrawal_lock(withdrawal_id)
        if approve and four_eyes_needed(withdrawal.amount):
            if withdrawal.status == WithdrawalStatus.PENDING:
                return _withdrawal_first_approval(withdrawal, actor, reason)
            if withdrawal.first_approved_by_id == actor.pk:
                raise FourEyesRequired(
                    f"Withdrawal {withdrawal.pk} of {withdrawal.amount} needs a second approval "
                    "by a different Finance user; you gave the first."
                )
        in_flight = platform_account_id(AccountKind.WITHDRAWALS_IN_FLIGHT, withdrawal.currency)
        if approve:
            kind, status = EntryKind.WITHDRAWAL_PAID, WithdrawalStatus.PAID
            legs = [
                Leg(in_flight, -withdrawal.amount),
                Leg(platform_account_id(AccountKind.PAYOUTS, withdrawal.currency), withdrawal.amount),
                Leg(withdrawal.account_id, 0, held=-withdrawal.amount),
            ]
        else:
            kind, status = EntryKind.WITHDRAWAL_RELEASED, WithdrawalStatus.REJECTED
            legs = [
                Leg(in_flight, -withdrawal.amount),
                Leg(withdrawal.account_id, withdrawal.amount, held=-withdrawal.amount),
            ]
        entry = ledger_post(
            kind=kind,
            currency=withdrawal.currency,
            reference=withdrawal.pk,
            idempotency_key=f"{kind}:{withdrawal.pk}",
            memo=reason,
            legs=legs,
        )
        now = timezone.now()
        withdrawal.status = status
        withdrawal.reason = reason
        withdrawal.decided_by = actor
        withdrawal.decided_at = now
        withdrawal.updated_at = now
        withdrawal.save(update_fields=["status", "reason", "decided_by", "decided_at", "updated_at"])
        audit_record(
            actor=actor,
            action=f"withdrawal.{'approve' if approve else 'reject'}",
            object_type="withdrawal",
            object_id=withdrawal.pk,
            data={"amount": withdrawal.amount, "currency": withdrawal.currency, "reason": reason, "entry": entry.pk},
        )
        transaction.on_commit(partial(_decision_mail, withdrawal.pk))
    return withdrawal


def _decision_mail(withdrawal_id: str) -> None:
    """After commit: the requester hears of the decision (a task, so a slow mail server delays nobody)."""
    task_named("wallets.tasks.withdrawal_decided_mail").delay(withdrawal_id)


@retry_on_contention()
def withdrawal_approve(*, withdrawal_id: str, actor: User | None, reason: str) -> Withdrawal:
    """Finance pays a pending withdrawal out: the held amount leaves the platform.

    At or above ``FOUR_EYES_THRESHOLD`` the first approval gives ``awaiting_second_approval`` and only a
    second, different Finance user's approval pays. Locks: the withdrawal, then the wallet account. Audited.
    Raises ``PermissionDeniedError``, ``FourEyesRequired``, ``ValidationFailed`` (no reason), ``NotFound``
    and ``InvalidStatus`` (decided already).
    """
    return _withdrawal_decide(withdrawal_id=withdrawal_id, actor=actor, approve=True, reason=reason)


@retry_on_contention()
def withdrawal_reject(*, withdrawal_id: str, actor: User | None, reason: str) -> Withdrawal:
    """Finance refuses an undecided withdrawal: the held amount goes back to the wallet's balance.

    Locks: the withdrawal, then the wallet account. Audited. Raises ``PermissionDeniedError``,
    ``ValidationFailed`` (no reason), ``NotFound`` and ``InvalidStatus`` (decided already).
    """
    return _withdrawal_decide(withdrawal_id=withdrawal_id, actor=actor, approve=False, reason=reason)
