"""What a product sells for (its terms, remembered per process) and the pieces every purchase is built from.

Locks: ``stock_take_for`` takes the product's row (after the order and payment rows are written).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from accounts.models import Role, User
from catalog.locks import TakenStock, codes_take, stock_take
from catalog.models import Delivery, Product
from config import metrics
from config.db import prepared_cursor
from config.errors import DomainError, ValidationFailed
from config.money import basis_points
from orders.errors import OwnProduct, ProductNotAvailable, ProductOutOfStock
from orders.models import Order
from payments.models import PaymentMethodType
from wallets.ledger import Leg, platform_account_id, wallet_id_for
from wallets.models import AccountKind


def purchase_key(order_id: str) -> str:
    """The ledger idempotency key of an order's purchase entry: one per order, ever."""
    return f"purchase:{order_id}"


@dataclass(frozen=True, slots=True)
class Terms:
    """What an order copies from its product. Remembered per process: the stock
    UPDATE returns the live values and a purchase made on stale ones is redone."""

    merchant_id: str
    price: int
    currency: str
    fulfillment: str
    # Set at creation and never changed: what each unit hands the buyer, and a download's limits.
    delivery: str = Delivery.TEXT
    download_limit: int = 5
    download_ttl_hours: int = 72


_terms_memory: dict[str, Terms] = {}
_TERMS_SQL = (
    "SELECT merchant_id, price, currency, fulfillment, delivery, download_limit, download_ttl_hours"  # noqa: S608 - our names; values are parameters
    f" FROM {Product._meta.db_table} WHERE id = %s AND is_active AND deleted_at IS NULL"
)
_TERMS_MEMORY_SIZE = 4096


def terms_forget() -> None:
    """Drops the remembered product terms (tests, after a database flush)."""
    _terms_memory.clear()


def terms_drop(product_id: str) -> None:
    """Forgets one product's remembered terms (it changed, or stopped selling)."""
    _terms_memory.pop(product_id, None)


def terms_remember(product_id: str, terms: Terms) -> None:
    if len(_terms_memory) >= _TERMS_MEMORY_SIZE:
        _terms_memory.clear()
    _terms_memory[product_id] = terms


def terms_for(product_id: str) -> Terms:
    terms = _terms_memory.get(product_id)
    if terms is not None:
        return terms
    terms = terms_read(product_id)
    if terms is None:
        raise ProductNotAvailable(param="product")
    terms_remember(product_id, terms)
    return terms


def terms_read(product_id: str) -> Terms | None:
    """What a public product sells for now (None: not for sale)."""
    with prepared_cursor() as cursor:  # each product's first purchase in this process: keep it cheap
        cursor.execute(_TERMS_SQL, [product_id])
        row = cursor.fetchone()
    return None if row is None else Terms(*row)


def terms_of_product(product_id: str) -> Terms:
    """What a product sells for now, public or not (a card order paid after its product was hidden)."""
    row = Product.objects.filter(pk=product_id).values_list(
        "merchant_id", "price", "currency", "fulfillment", "delivery", "download_limit", "download_ttl_hours"
    )
    return Terms(*row.get())


def _terms_taken(taken: TakenStock) -> Terms:
    return Terms(
        taken.merchant_id,
        taken.price,
        taken.currency,
        taken.fulfillment,
        taken.delivery,
        taken.download_limit,
        taken.download_ttl_hours,
    )


class NoStock(Exception):
    """stock_take took nothing: rolls the purchase back, then tells why."""


class StaleTerms(Exception):
    """The product changed since its terms were remembered: roll back, redo with these."""

    def __init__(self, terms: Terms) -> None:
        super().__init__()
        self.terms = terms


def no_stock_reason(product_id: str) -> DomainError:
    terms_drop(product_id)
    row = Product.objects.filter(pk=product_id).values_list("is_active", "deleted_at", "stock").first()
    if row is None or not row[0] or row[1] is not None:
        return ProductNotAvailable(param="product")
    metrics.count_out_of_stock()
    return ProductOutOfStock(f"Product {product_id} has {row[2]} left.", param="quantity")


def stock_take_for(order: Order, terms: Terms) -> None:
    """Takes the order's stock (locks the product row), and for a code pool as many codes (after the product
    row, in id order); checks the order was built on live terms."""
    taken = stock_take(order.product_id, order.quantity)
    if taken is None:
        raise NoStock()
    live = _terms_taken(taken)
    if live != terms:
        raise StaleTerms(live)
    if live.delivery == Delivery.CODES:
        codes = codes_take(product_id=order.product_id, quantity=order.quantity, order_id=order.pk)
        if len(codes) != order.quantity:  # the stock counts the available codes: a broken invariant
            raise NoStock()


def check_buy(*, buyer: User, quantity: int, terms: Terms) -> None:
    if terms.merchant_id == buyer.pk:
        raise OwnProduct(param="product")
    if type(quantity) is not int or not 1 <= quantity <= settings.MAXIMUM_ORDER_QUANTITY:
        raise ValidationFailed(f"Quantity must be between 1 and {settings.MAXIMUM_ORDER_QUANTITY}.", param="quantity")


def order_build(
    *, buyer: User, product_id: str, quantity: int, terms: Terms, method: PaymentMethodType, now: datetime
) -> Order:
    amount = terms.price * quantity
    fee = basis_points(amount, settings.PLATFORM_FEE_BPS)
    return Order(
        buyer=buyer,
        merchant_id=terms.merchant_id,
        product_id=product_id,
        quantity=quantity,
        unit_price=terms.price,
        amount=amount,
        currency=terms.currency,
        fee=fee,
        merchant_net=amount - fee,
        payment_method=method,
        created_at=now,
        updated_at=now,
    )


def purchase_legs(order: Order, *, paid_from: str) -> list[Leg]:
    legs = [
        Leg(paid_from, -order.amount),
        Leg(wallet_id_for(user_id=order.merchant_id, role=Role.MERCHANT, currency=order.currency), order.merchant_net),
        Leg(platform_account_id(AccountKind.PLATFORM_FEES, order.currency), order.fee),
    ]
    return [leg for leg in legs if leg.amount]
