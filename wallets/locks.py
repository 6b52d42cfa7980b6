"""The only place the wallets app takes row locks.

Lock order, the same on every path of every app, so no two transactions can
wait on each other in a cycle:

    orders.Order → payments.Payment → payments.Refund → payments.Dispute
    → catalog.Product → wallets.Deposit / wallets.Withdrawal → wallets.Account

and within one table always in primary-key order.
"""

from __future__ import annotations

from collections.abc import Iterable

from wallets.models import Account, Deposit, Withdrawal


def lock_accounts(account_ids: Iterable[str]) -> dict[str, Account]:
    """Locks wallet accounts in pk order with one ``SELECT … ORDER BY id FOR UPDATE``."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = Account.objects.select_for_update(of=("self",)).filter(id__in=ids).order_by("pk")
    return {account.id: account for account in rows}


def lock_withdrawal(withdrawal_id: str) -> Withdrawal:
    return Withdrawal.objects.select_for_update(of=("self",)).get(pk=withdrawal_id)


def lock_deposit(deposit_id: str) -> Deposit:
    return Deposit.objects.select_for_update(of=("self",)).get(pk=deposit_id)
