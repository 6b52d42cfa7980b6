"""Periodic tasks of the platform itself (not of one app); scheduled in CELERY_BEAT_SCHEDULE."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="config.tasks.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    """Deletes Idempotency-Keys older than IDEMPOTENCY_TTL; returns how many went."""
    from config.idempotency import purge_expired

    deleted = purge_expired()
    if deleted:
        logger.info("purged expired idempotency keys", extra={"deleted": deleted})
    return deleted
