"""Payouts from a wallet: the request (funds held at once) and the staff decision (paid or released).

Locks: Withdrawal → the wallet account (``ledger_post``). Every decision is audited.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from config.db import retry_on_contention
from config.errors import NotFound
from wallets.errors import AmountOutsideLimits, WithdrawalNotPending
from wallets.ledger import Leg, ledger_post, platform_account_id, wallet_id_for
from wallets.locks import lock_withdrawal
from wallets.models import AccountKind, EntryKind, Withdrawal, WithdrawalStatus


@retry_on_contention()
def withdrawal_request(*, user: User, amount: int) -> Withdrawal:
    """Asks for a payout: the amount leaves the wallet's balance and is held at once.

    Locks: the wallet account (through ``ledger_post``). Raises ``LimitExceeded``
    and ``InsufficientFunds`` (available balance below ``amount``).
    """
    AmountOutsideLimits.check(amount, settings.MINIMUM_WITHDRAWAL, settings.MAXIMUM_WITHDRAWAL, "withdrawal")
    currency = settings.PLATFORM_CURRENCY
    with transaction.atomic():
        account_id = wallet_id_for(user_id=user.pk, role=user.role, currency=currency)
        now = timezone.now()
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


def _withdrawal_decide(*, withdrawal_id: str, actor: User | None, approve: bool, reason: str) -> Withdrawal:
    with transaction.atomic():
        try:
            withdrawal = lock_withdrawal(withdrawal_id)
        except Withdrawal.DoesNotExist as exc:
            raise NotFound(f"No withdrawal {withdrawal_id}.", param="withdrawal") from exc
        if withdrawal.status != WithdrawalStatus.PENDING:
            raise WithdrawalNotPending(f"Withdrawal {withdrawal.pk} is {withdrawal.status}.")
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
        withdrawal.reason = reason[:255]
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
    return withdrawal


@retry_on_contention()
def withdrawal_approve(*, withdrawal_id: str, actor: User | None, reason: str = "") -> Withdrawal:
    """Staff pay a pending withdrawal out: the held amount leaves the platform.

    Locks: the withdrawal, then the wallet account. Audited. Raises ``NotFound``
    and ``InvalidStatus`` (not pending).
    """
    return _withdrawal_decide(withdrawal_id=withdrawal_id, actor=actor, approve=True, reason=reason)


@retry_on_contention()
def withdrawal_reject(*, withdrawal_id: str, actor: User | None, reason: str) -> Withdrawal:
    """Staff refuse a pending withdrawal: the held amount goes back to the wallet's balance.

    Locks: the withdrawal, then the wallet account. Audited. Raises ``NotFound``
    and ``InvalidStatus`` (not pending).
    """
    return _withdrawal_decide(withdrawal_id=withdrawal_id, actor=actor, approve=False, reason=reason)
