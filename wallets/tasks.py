"""Celery tasks of the wallets app: the requester's mail about a withdrawal decision, the periodic release
of merchants' card-sale income. The mail is queued by name from ``wallets.withdrawals``; the release by beat.
"""

from __future__ import annotations

from celery import shared_task

from accounts.mail import mail_send_once
from config.money import Money
from wallets.availability import income_release_due as income_release_due_service
from wallets.models import Withdrawal, WithdrawalStatus


@shared_task(name="wallets.tasks.income_release_due")
def income_release_due() -> int:
    """Beat, every few minutes: card-sale income that waited MERCHANT_AVAILABILITY_DAYS becomes available."""
    return income_release_due_service()


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
