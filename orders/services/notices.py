"""The buyer's emails about an order: the receipt once paid, the notice once refunded (each at most once).

Receipts go through an outbox: the transaction that pays an order also writes its ``ReceiptDue`` row
(``receipt_due`` or, in the wallet purchase's one statement, ``receipt_due_sql``), so no crash after the
commit loses a receipt. After the commit, ``receipts_kick`` queues the drain, at most once per
``RECEIPT_BATCH_SECONDS`` in a process and delayed by as much, so one drain sends every receipt due
by then in batches (one query for the orders, one for their goods, one mail connection); the beat's
sweep catches whatever a lost kick left. Other notices are queued one task each by name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.mail import STALE_CLAIM, Mail, mail_send_many, mail_send_once
from config.db import insert_unless_taken, insert_values, prepared_cursor
from config.money import Money
from config.queue import task_named
from orders.models import Goods, GoodsStatus, GoodsType, Order, ReceiptDue
from orders.services.goods import download_path, download_token_live, goods_link_reissue

logger = logging.getLogger(__name__)

_LABELS = {
    GoodsType.TEXT: "Content",
    GoodsType.CODE: "Code",
    GoodsType.LICENSE_KEY: "Licence key",
    GoodsType.DOWNLOAD: "Download",
}
_DUE_TABLE = ReceiptDue._meta.db_table
RECEIPT_BATCH = 100


def receipt_due(order_id: str) -> None:
    """Inside the transaction that pays the order: its receipt is due (the outbox row), and is sent after commit."""
    insert_unless_taken(ReceiptDue(order_id=order_id, due_at=timezone.now()), unique=("order_id",))
    transaction.on_commit(receipts_kick)


def receipt_due_sql(order_id: str, now: datetime) -> tuple[str, list[object]]:
    """The outbox row as an INSERT for the wallet purchase's statement (the caller calls ``receipts_kick`` after
    commit)."""
    return insert_values(ReceiptDue(order_id=order_id, due_at=now))


class DrainKick:
    """When this process last queued the drain; at most one queued per ``RECEIPT_BATCH_SECONDS``."""

    lock = threading.Lock()
    next_at = 0.0


def receipts_kick() -> None:
    """After a commit that made receipts due: queues the drain to run ``RECEIPT_BATCH_SECONDS`` from now, unless
    this process queued one that has not run yet (it sends this receipt too). With 0 (tests, eager tasks) every
    kick runs the drain at once. A broker that does not answer loses nothing: the beat's sweep sends them."""
    delay = float(settings.RECEIPT_BATCH_SECONDS)
    if delay > 0:
        now = time.monotonic()
        with DrainKick.lock:
            if now < DrainKick.next_at:
                return
            DrainKick.next_at = now + delay
    try:
        task_named("orders.tasks.receipts_send_due").apply_async(countdown=delay or None)
    except Exception:  # the broker is down: the sweep (beat, every minute) sends these receipts
        logger.warning("could not queue the receipts' drain", exc_info=True)
        DrainKick.next_at = 0.0


def refund_notice_on_commit(order_id: str, refunded: int) -> None:
    transaction.on_commit(lambda: task_named("orders.tasks.order_refund_notice_send").delay(order_id, refunded))


def _order(order_id: str) -> Order | None:
    return next(iter(_orders([order_id])), None)


def _common(order: Order) -> dict[str, object]:
    return {
        "order": {
            "id": order.pk,
            "product_name": order.product.name,
            "quantity": order.quantity,
            "payment_method": order.payment_method,
        },
        "merchant": order.merchant.get_full_name(),
        "amount": str(Money(order.amount, order.currency)),
    }


def receipts_send_due(*, batch: int = RECEIPT_BATCH, max_batches: int = 50) -> int:
    """The drain: sends the receipts due, a batch at a time, each at most once; returns how many went out.

    A batch is claimed in one statement (``FOR UPDATE SKIP LOCKED``: drains running side by side take
    different rows), sent, then its rows deleted. A row claimed by a drain that died is taken again once
    its claim is as stale as a mail claim, and the mail's own claim keeps a receipt from going out twice.
    """
    sent = 0
    for _ in range(max_batches):
        order_ids = _receipts_claim(batch)
        if not order_ids:
            break
        try:
            sent += _receipts_send(order_ids)
        except BaseException:
            ReceiptDue.objects.filter(order_id__in=order_ids).update(claimed_at=None)  # the next drain retries
            raise
        ReceiptDue.objects.filter(order_id__in=order_ids).delete()
    return sent


def _receipts_claim(limit: int) -> list[str]:
    now = timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(
            f"UPDATE {_DUE_TABLE} SET claimed_at = %s WHERE order_id IN (SELECT order_id FROM {_DUE_TABLE}"  # noqa: S608
            " WHERE claimed_at IS NULL OR claimed_at < %s ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING order_id",
            [now, now - STALE_CLAIM, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def receipt_send(*, order_id: str) -> bool:
    """The receipt of one paid order, now (its outbox row goes); False when it was sent already or the order
    is not paid."""
    sent = _receipts_send([order_id])
    ReceiptDue.objects.filter(order_id=order_id).delete()
    return sent == 1


def _receipts_send(order_ids: Sequence[str]) -> int:
    """Receipts of paid orders: amounts, merchant, and each item (a download as its live link, or a fresh one made
    only once the receipt is claimed). Two queries for the batch, then ``mail_send_many``."""
    orders = [order for order in _orders(order_ids) if order.paid_at is not None]
    items: dict[str, list[Goods]] = defaultdict(list)
    for item in Goods.objects.filter(order_id__in=[order.pk for order in orders], status=GoodsStatus.ACTIVE).order_by(
        "id"
    ):
        items[item.order_id].append(item)
    mails = [
        Mail(
            key=f"order-receipt:{order.pk}",
            to=order.buyer.email,
            template="order_receipt",
            context=_common(order),
            late_context=_goods_context(items[order.pk]),
        )
        for order in orders
    ]
    return len(mail_send_many(mails))


def _goods_context(items: list[Goods]) -> Callable[[], dict[str, object]]:
    def goods() -> dict[str, object]:
        lines: list[dict[str, object]] = []
        for item in items:
            line: dict[str, object] = {"label": _LABELS[GoodsType(item.type)], "value": item.value}
            if item.type == GoodsType.DOWNLOAD:
                # The link the order gave, while it works (reissuing would stop it); else a fresh one.
                token = download_token_live(item)
                if token is None:
                    issued = goods_link_reissue(goods=item)
                    if issued is None:
                        continue
                    item, token = issued
                line.update(url=settings.PUBLIC_URL + download_path(token), expires_at=item.expires_at)
                line.update(downloads_left=item.downloads_left, value="")
            lines.append(line)
        return {"goods": lines}

    return goods


def _orders(order_ids: Sequence[str]) -> list[Order]:
    return list(Order.objects.select_related("buyer", "merchant", "product").filter(pk__in=list(order_ids)))


def refund_notice_send(*, order_id: str, refunded: int) -> bool:
    """The buyer's notice of a refund (one per refunded total); says when the goods were revoked."""
    order = _order(order_id)
    if order is None:
        return False
    revoked = refunded >= order.amount
    return mail_send_once(
        key=f"order-refunded:{order.pk}:{refunded}",
        to=order.buyer.email,
        template="order_refunded",
        context={**_common(order), "refunded": str(Money(refunded, order.currency)), "revoked": revoked},
    )
