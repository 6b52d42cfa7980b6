"""The buyer's emails about an order: the receipt once paid, the notice once refunded (each at most once).

Services queue them after commit by task name; the tasks call the senders here, which build the context.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.mail import mail_send_once
from config.money import Money
from config.queue import task_named
from orders.models import Goods, GoodsStatus, GoodsType, Order
from orders.services.goods import download_path, goods_link_reissue

_LABELS = {
    GoodsType.TEXT: "Content",
    GoodsType.CODE: "Code",
    GoodsType.LICENSE_KEY: "Licence key",
    GoodsType.DOWNLOAD: "Download",
}


def receipt_send_on_commit(order_id: str) -> None:
    transaction.on_commit(lambda: task_named("orders.tasks.order_receipt_send").delay(order_id))


def refund_notice_on_commit(order_id: str, refunded: int) -> None:
    transaction.on_commit(lambda: task_named("orders.tasks.order_refund_notice_send").delay(order_id, refunded))


def _order(order_id: str) -> Order | None:
    return Order.objects.select_related("buyer", "merchant", "product").filter(pk=order_id).first()


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


def receipt_send(*, order_id: str) -> bool:
    """The receipt of a paid order: amounts, merchant, and each item (a download as a fresh link, made only
    when this call sends). False when it was sent already or the order is not paid."""
    order = _order(order_id)
    if order is None or order.paid_at is None:
        return False

    def goods() -> dict[str, object]:
        items: list[dict[str, object]] = []
        for item in Goods.objects.filter(order_id=order.pk, status=GoodsStatus.ACTIVE).order_by("id"):
            line: dict[str, object] = {"label": _LABELS[GoodsType(item.type)], "value": item.value}
            if item.type == GoodsType.DOWNLOAD:
                issued = goods_link_reissue(goods=item)
                if issued is None:
                    continue
                item, token = issued
                line.update(url=settings.PUBLIC_URL + download_path(token), expires_at=item.expires_at)
                line.update(downloads_left=item.downloads_left, value="")
            items.append(line)
        return {"goods": items}

    return mail_send_once(
        key=f"order-receipt:{order.pk}",
        to=order.buyer.email,
        template="order_receipt",
        context=_common(order),
        late_context=goods,
    )


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
