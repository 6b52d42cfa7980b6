"""Celery tasks of the wallets app: the requester's mail about a withdrawal decision.

Queued by name (``config.queue.task_named``) from ``wallets.withdrawals`` once the decision commits.
"""

from __future__ import annotations

from celery import shared_task

from accounts.mail import mail_send_once
from config.money import Money
from wallets.models import Withdrawal, WithdrawalStatus


@shared_task(name="wallets.tasks.withdrawal_decided_mail")
def withdrawal_decided_mail(withdrawal_id: str) -> None:
    """Queued on commit of a withdrawal decision: tells the requester (once per decision)."""
    withdrawal = Withdrawal.objects.select_related("user").filter(pk=withdrawal_id).first()
    if withdrawal is None:
        return
    if withdrawal.status not in (WithdrawalStatus.PAID, WithdrawalStatus.REJECTED):
        return
    mail_send_once(
        key=f"withdrawal_decided:{withdrawal.pk}",
        to=withdrawal.user.email,
        template="withdrawal_decided",
        context={
            "withdrawal": withdrawal,
            "paid": withdrawal.status == WithdrawalStatus.PAID,
            "amount": str(Money(withdrawal.amount, withdrawal.currency)),
        },
    )
