"""Transactional email sent at most once per key: rendered from ``templates/email/``, claimed in ``SentEmail``.

Tasks call ``mail_send_once`` after the commit that caused a message; a retried task finds the claim, sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import SentEmail, SentEmailStatus
from config.db import insert_unless_taken

logger = logging.getLogger(__name__)

# A claim older than this whose send never finished (a killed worker) may be taken again.
STALE_CLAIM = timedelta(minutes=10)


def _claim(*, key: str, to: str, template: str) -> bool:
    """True when this call holds the key's claim: a new row, or a stale unsent one taken over atomically."""
    if insert_unless_taken(SentEmail(key=key, to=to, template=template), unique=("key",)):
        return True
    now = timezone.now()
    taken = SentEmail.objects.filter(key=key, status=SentEmailStatus.SENDING, claimed_at__lt=now - STALE_CLAIM).update(
        claimed_at=now
    )
    return taken == 1


def mail_send_once(
    *,
    key: str,
    to: str,
    template: str,
    context: dict[str, object],
    late_context: Callable[[], dict[str, object]] | None = None,
) -> bool:
    """Renders ``email/<template>_subject.txt``, ``.txt`` and ``.html`` and sends them to ``to`` once per ``key``.

    Returns False when the key was already sent (or is being sent). A send that raises gives the claim back,
    so a retry sends; the message never holds more than its context (no card number, no secret but the
    recipient's own link). ``late_context`` is called only once the claim is held, for parts that must not
    be made twice (a fresh download link).
    """
    if not _claim(key=key, to=to, template=template):
        return False
    try:
        if late_context is not None:
            context = {**context, **late_context()}
        subject = " ".join(render_to_string(f"email/{template}_subject.txt", context).split())
        text = render_to_string(f"email/{template}.txt", context)
        html = render_to_string(f"email/{template}.html", context)
        message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [to])
        message.attach_alternative(html, "text/html")
        message.send()
    except BaseException:
        # Give the claim back so the retry sends; the exception itself goes on to the task's retry.
        SentEmail.objects.filter(key=key, status=SentEmailStatus.SENDING).delete()
        raise
    SentEmail.objects.filter(key=key).update(status=SentEmailStatus.SENT, sent_at=timezone.now())
    logger.info("email sent", extra={"template": template, "email_key": key})
    return True
