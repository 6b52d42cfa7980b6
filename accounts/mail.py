"""Transactional email sent at most once per key: rendered from ``templates/email/``, claimed in ``SentEmail``.

Tasks call ``mail_send_once`` after the commit that caused a message; a retried task finds the claim, sends nothing.
``mail_send_many`` does the same for a batch (the receipts' drain): one statement claims every key, one mail
connection sends them all, one statement marks them sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import SentEmail, SentEmailStatus
from config.db import prepared_cursor

logger = logging.getLogger(__name__)

# A claim older than this whose send never finished (a killed worker) may be taken again.
STALE_CLAIM = timedelta(minutes=10)
_TABLE = SentEmail._meta.db_table


@dataclass(frozen=True)
class Mail:
    """One message to send once per ``key``. ``late_context`` is called only once the claim is held, for parts
    that must not be made twice (a fresh download link)."""

    key: str
    to: str
    template: str
    context: dict[str, object]
    late_context: Callable[[], dict[str, object]] | None = None


def _claim(mails: Sequence[Mail]) -> set[str]:
    """The keys this call holds: new rows, or stale unsent ones taken over atomically (two statements, any count)."""
    now = timezone.now()
    keys = [mail.key for mail in mails]
    with prepared_cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {_TABLE} (key, "to", template, status, claimed_at)'  # noqa: S608 - our table
            " SELECT k, t, tpl, %s, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS m(k, t, tpl)"
            " ON CONFLICT (key) DO NOTHING RETURNING key",
            [SentEmailStatus.SENDING.value, now, keys, [mail.to for mail in mails], [mail.template for mail in mails]],
        )
        held = {row[0] for row in cursor.fetchall()}
        if len(held) < len(keys):
            cursor.execute(
                f"UPDATE {_TABLE} SET claimed_at = %s WHERE key = ANY(%s::text[])"  # noqa: S608 - our table
                " AND status = %s AND claimed_at < %s RETURNING key",
                [now, [key for key in keys if key not in held], SentEmailStatus.SENDING.value, now - STALE_CLAIM],
            )
            held.update(row[0] for row in cursor.fetchall())
    return held


def _message(mail: Mail) -> EmailMultiAlternatives:
    context = mail.context if mail.late_context is None else {**mail.context, **mail.late_context()}
    subject = " ".join(render_to_string(f"email/{mail.template}_subject.txt", context).split())
    text = render_to_string(f"email/{mail.template}.txt", context)
    html = render_to_string(f"email/{mail.template}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [mail.to])
    message.attach_alternative(html, "text/html")
    return message


def mail_send_many(mails: Sequence[Mail]) -> list[str]:
    """Renders and sends each mail whose key this call claims, over one mail connection; returns the keys sent.

    A mail already sent (or being sent) is skipped. When a send raises, the claims of that mail and of the
    ones not yet sent are given back, so a retry sends them; those sent before it stay sent; the exception
    goes on to the caller (the task's retry). The message never holds more than its context (no card
    number, no secret but the recipient's own link).
    """
    if not mails:
        return []
    held = _claim(mails)
    ours = [mail for mail in mails if mail.key in held]
    sent: list[str] = []
    try:
        if ours:
            with get_connection() as mailer:
                for mail in ours:
                    mailer.send_messages([_message(mail)])
                    sent.append(mail.key)
    except BaseException:
        SentEmail.objects.filter(
            key__in=[mail.key for mail in ours if mail.key not in sent], status=SentEmailStatus.SENDING
        ).delete()
        raise
    finally:
        if sent:
            _mark_sent(sent)
    for mail in ours:
        logger.info("email sent", extra={"template": mail.template, "email_key": mail.key})
    return sent


def _mark_sent(keys: list[str]) -> None:
    with prepared_cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET status = %s, sent_at = %s WHERE key = ANY(%s::text[])",  # noqa: S608 - our table
            [SentEmailStatus.SENT.value, timezone.now(), keys],
        )


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
    mail = Mail(key=key, to=to, template=template, context=context, late_context=late_context)
    return bool(mail_send_many([mail]))
