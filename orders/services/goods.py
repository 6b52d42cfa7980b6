"""The goods a paid order delivers (one per unit): built with the purchase, revoked by a full refund or a lost
dispute, download links issued and counted, licence keys checked. Locks: the goods row for a download.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import User
from catalog.locks import codes_revoke
from catalog.models import Delivery, Product, ProductCode, ProductFile
from config.errors import NotFound
from config.ids import new_id
from orders.errors import DownloadExpired, DownloadLimitReached, GoodsRevoked
from orders.models import Goods, GoodsStatus, GoodsType, Order
from orders.services.terms import Terms

TYPE_OF_DELIVERY = {
    Delivery.TEXT: GoodsType.TEXT,
    Delivery.CODES: GoodsType.CODE,
    Delivery.LICENSE_KEY: GoodsType.LICENSE_KEY,
    Delivery.FILE: GoodsType.DOWNLOAD,
}
# Crockford's base32 (no I, L, O, U): 6 groups of 5 characters are 150 random bits.
_KEY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_KEY_GROUPS, _KEY_GROUP_LENGTH = 6, 5
_GOODS = Goods._meta.db_table
_CODES = ProductCode._meta.db_table


def license_key_new() -> str:
    """A licence key of 150 random bits in six readable groups (``7KQ2M-…``)."""
    chars = [secrets.choice(_KEY_ALPHABET) for _ in range(_KEY_GROUPS * _KEY_GROUP_LENGTH)]
    return "-".join("".join(chars[i : i + _KEY_GROUP_LENGTH]) for i in range(0, len(chars), _KEY_GROUP_LENGTH))


def license_key_normalize(key: str) -> str:
    """What a buyer may type back: any case, with or without dashes or spaces."""
    bare = "".join(key.split()).replace("-", "").upper().translate(str.maketrans("ILO", "110"))
    return "-".join(bare[i : i + _KEY_GROUP_LENGTH] for i in range(0, len(bare), _KEY_GROUP_LENGTH))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOKEN_SALT = "orders.goods.download_token"


def download_token(*, goods_id: str, expires_at: datetime) -> str:
    """The download token of a link: an HMAC (``SECRET_KEY``) of the goods id and the link's expiry.

    Only its sha256 is stored, so the database alone never yields a link, while the platform can show the
    buyer's live link again (library, order) without keeping it; a new link has a new expiry, so a new token.
    """
    micros = (expires_at - _EPOCH) // timedelta(microseconds=1)
    digest = salted_hmac(_TOKEN_SALT, f"{goods_id}:{micros}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def download_path(token: str) -> str:
    return f"/api/v1/downloads/{token}"


def library_link_path(goods_id: str) -> str:
    return f"/api/v1/library/{goods_id}/link"


def download_token_live(goods: Goods, *, now: datetime | None = None) -> str | None:
    """The token of the item's link while it works (active, not expired, downloads left); None otherwise, or
    when the stored hash is not this token's (a link made under an earlier ``SECRET_KEY``: refresh it)."""
    if goods.type != GoodsType.DOWNLOAD or goods.status != GoodsStatus.ACTIVE or not goods.token_hash:
        return None
    if goods.expires_at is None or goods.expires_at <= (now or timezone.now()) or not goods.downloads_left:
        return None
    token = download_token(goods_id=goods.pk, expires_at=goods.expires_at)
    return token if secrets.compare_digest(token_hash(token), goods.token_hash) else None


@dataclass(slots=True)
class NewGoods:
    """What a purchase inserts for its units, and the download tokens only this response may show."""

    ids: list[str]
    values: list[str]
    hashes: list[str | None]
    tokens: dict[str, str]  # goods id → raw download token
    expires_at: datetime | None
    downloads_left: int | None


def goods_plan(*, quantity: int, terms: Terms, now: datetime) -> NewGoods:
    """Ids, values and download tokens (derived, never stored: their sha256 is) for ``quantity`` units."""
    ids = [new_id("gds") for _ in range(quantity)]
    values = [""] * quantity
    hashes: list[str | None] = [None] * quantity
    tokens: dict[str, str] = {}
    expires_at, downloads_left = None, None
    if terms.delivery == Delivery.TEXT:
        values = [terms.fulfillment] * quantity
    elif terms.delivery == Delivery.LICENSE_KEY:
        values = [license_key_new() for _ in range(quantity)]
    elif terms.delivery == Delivery.FILE:
        expires_at = now + timedelta(hours=terms.download_ttl_hours)
        downloads_left = terms.download_limit
        for i, goods_id in enumerate(ids):
            tokens[goods_id] = download_token(goods_id=goods_id, expires_at=expires_at)
            hashes[i] = token_hash(tokens[goods_id])
    return NewGoods(ids, values, hashes, tokens, expires_at, downloads_left)


def goods_insert_sql(
    order: Order, terms: Terms, plan: NewGoods, *, codes: str | None, codes_params: tuple[Any, ...] = ()
) -> tuple[str, list[Any]]:
    """One ``INSERT … SELECT FROM unnest(…)`` of the order's goods; for a code pool joined (one per code, by
    rank) to ``codes``: a CTE, or a subquery with ``codes_params``, of the (id, code) pairs the order holds."""
    columns = "id, order_id, buyer_id, product_id, type, value, code_id, status, token_hash, expires_at,"
    columns += " downloads_left, created_at"
    units = "unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS g(id, value, token_hash, n)"
    if codes is None:
        source, value, code_id = units, "g.value", "NULL::bigint"
    else:
        ranked = f"(SELECT id, code, row_number() OVER (ORDER BY id) AS n FROM {codes}) AS c"  # noqa: S608 - our names; values are parameters
        source, value, code_id = f"{units} JOIN {ranked} USING (n)", "c.code", "c.id"
    sql = (
        f"INSERT INTO {_GOODS} ({columns}) SELECT g.id, %s, %s, %s, %s, {value}, {code_id}, %s, g.token_hash,"  # noqa: S608
        f" %s::timestamptz, %s::integer, %s::timestamptz FROM {source}"
    )
    params: list[Any] = [order.pk, order.buyer_id, order.product_id, TYPE_OF_DELIVERY[Delivery(terms.delivery)]]
    params += [GoodsStatus.ACTIVE, plan.expires_at, plan.downloads_left, order.paid_at or order.created_at]
    return sql, [*params, plan.ids, plan.values, plan.hashes, *codes_params]


def goods_from_plan(order: Order, terms: Terms, plan: NewGoods, codes: list[str] | None) -> list[Goods]:
    """The goods a purchase statement just inserted, as unsaved-looking instances (no read back)."""
    kind = TYPE_OF_DELIVERY[Delivery(terms.delivery)]
    values = codes if codes is not None else plan.values
    items = []
    for goods_id, value, hashed in zip(plan.ids, values, plan.hashes, strict=False):
        item = Goods(
            id=goods_id, order_id=order.pk, buyer_id=order.buyer_id, product_id=order.product_id, type=kind,
            value=value, status=GoodsStatus.ACTIVE, token_hash=hashed, expires_at=plan.expires_at,
            downloads_left=plan.downloads_left, created_at=order.paid_at or order.created_at,
        )  # fmt: skip
        item._state.adding = False
        items.append(item)
    return items


def goods_as_dict(goods: Goods, *, token: str | None = None) -> dict[str, Any]:
    """A goods item as the API shows it. A download's ``url`` is its live link (``token`` where one was just
    made), null once expired, used up or revoked; ``refresh`` is where the buyer POSTs for a fresh link while
    the item is active with downloads left (null otherwise, and for every other type)."""
    download = goods.type == GoodsType.DOWNLOAD
    live = (token or download_token_live(goods)) if download else None
    refreshable = download and goods.status == GoodsStatus.ACTIVE and bool(goods.downloads_left)
    return {
        "id": goods.pk,
        "type": goods.type,
        "value": None if download else goods.value,
        "url": settings.PUBLIC_URL + download_path(live) if live else None,
        "refresh": settings.PUBLIC_URL + library_link_path(goods.pk) if refreshable else None,
        "expires_at": goods.expires_at.isoformat().replace("+00:00", "Z") if goods.expires_at else None,
        "downloads_left": goods.downloads_left,
        "status": goods.status,
    }


def goods_issue(*, order: Order, terms: Terms) -> NewGoods:
    """The goods of an order paid by card (its codes were taken with its stock). Caller holds the order lock."""
    if Goods.objects.filter(order_id=order.pk).exists():
        return NewGoods([], [], [], {}, None, None)
    plan = goods_plan(quantity=order.quantity, terms=terms, now=timezone.now())
    codes: str | None = None
    codes_params: tuple[Any, ...] = ()
    if terms.delivery == Delivery.CODES:
        codes, codes_params = f"(SELECT id, code FROM {_CODES} WHERE order_id = %s) AS held", (order.pk,)  # noqa: S608 - our names; values are parameters
    sql, params = goods_insert_sql(order, terms, plan, codes=codes, codes_params=codes_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return plan


def goods_revoke(*, order: Order) -> int:
    """A full refund or a lost dispute takes the order's goods back: codes revoked for good, links and keys
    answer revoked. Caller holds the order lock. Returns how many goods were revoked."""
    codes_revoke(order_id=order.pk)
    return Goods.objects.filter(order_id=order.pk, status=GoodsStatus.ACTIVE).update(
        status=GoodsStatus.REVOKED, revoked_at=timezone.now()
    )


def goods_of_buyer_get(*, buyer: User, goods_id: str) -> Goods:
    goods = Goods.objects.filter(pk=goods_id, buyer=buyer).first()
    if goods is None:
        raise NotFound("No such goods.", param="goods_id")
    return goods


def goods_link_reissue(*, goods: Goods) -> tuple[Goods, str] | None:
    """A new token for an active download with downloads left (the previous link stops); None otherwise."""
    ttl = Product.objects.filter(pk=goods.product_id).values_list("download_ttl_hours", flat=True).get()
    expires_at = timezone.now() + timedelta(hours=ttl)
    token = download_token(goods_id=goods.pk, expires_at=expires_at)
    changed = Goods.objects.filter(pk=goods.pk, status=GoodsStatus.ACTIVE, downloads_left__gt=0).update(
        token_hash=token_hash(token), expires_at=expires_at
    )
    goods.refresh_from_db()
    return (goods, token) if changed else None


def goods_link_issue(*, buyer: User, goods_id: str) -> tuple[Goods, str]:
    """A fresh download link for the buyer's own active download with downloads left; the old link stops.

    Returns the goods and the raw token (shown once). Raises NotFound (another buyer's, or not a download),
    GoodsRevoked, DownloadLimitReached (410).
    """
    goods = goods_of_buyer_get(buyer=buyer, goods_id=goods_id)
    if goods.type != GoodsType.DOWNLOAD:
        raise NotFound("This item is not a download.", param="goods_id")
    issued = goods_link_reissue(goods=goods)
    if issued is None:
        raise GoodsRevoked() if goods.status == GoodsStatus.REVOKED else DownloadLimitReached()
    return issued


@dataclass(frozen=True, slots=True)
class DownloadStart:
    file: ProductFile
    goods: Goods


def download_start(*, token: str) -> DownloadStart:
    """Counts one download of the link ``token`` and answers the file to stream.

    One conditional UPDATE decrements ``downloads_left`` (the row lock for that statement only); a link
    that does not qualify is told apart after. Raises NotFound (unknown token), GoodsRevoked,
    DownloadExpired, DownloadLimitReached (410).
    """
    hashed = token_hash(token)
    now = timezone.now()
    with transaction.atomic():
        changed = Goods.objects.filter(
            Q(token_hash=hashed, status=GoodsStatus.ACTIVE, expires_at__gt=now, downloads_left__gt=0)
        ).update(downloads_left=F("downloads_left") - 1)
        goods = Goods.objects.filter(token_hash=hashed).first()
        if goods is None:
            raise NotFound("No such download.", param="token")
        if not changed:
            if goods.status == GoodsStatus.REVOKED:
                raise GoodsRevoked()
            if goods.expires_at is None or goods.expires_at <= now:
                raise DownloadExpired()
            raise DownloadLimitReached()
        product_file = ProductFile.objects.filter(product_id=goods.product_id).first()
        if product_file is None:
            raise NotFound("The product has no file.", param="token")
    return DownloadStart(product_file, goods)


def license_check(*, key: str) -> dict[str, Any]:
    """What the merchant's software may learn of a key: valid, status, product. NotFound when unknown."""
    row = (
        Goods.objects.filter(type=GoodsType.LICENSE_KEY, value=license_key_normalize(key))
        .values_list("status", "product_id")
        .first()
    )
    if row is None:
        raise NotFound("No such licence key.", param="key")
    status, product_id = row
    return {"valid": status == GoodsStatus.ACTIVE, "status": status, "product": product_id}
