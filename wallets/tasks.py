"""Celery tasks of the wallets app: the requester's mail about a withdrawal decision, and releasing money
that has waited long enough (card top-ups cooling off, merchants' incoming card income)."""

from __future__ import annotations

import logging

from celery import shared_task

from wallets.models import Withdrawal

logger = logging.getLogger(__name__)


@shared_task(name="wallets.tasks.withdrawal_decided_mail")
def withdrawal_decided_mail(withdrawal_id: str) -> None:
    """Queued on commit of a withdrawal decision: tells the requester (once per decision)."""
    withdrawal = Withdrawal.objects.select_related("user").filter(pk=withdrawal_id).first()
    if withdrawal is None:
        return
    logger.info("withdrawal decided", extra={"withdrawal": withdrawal.pk, "status": withdrawal.status})
