"""The one-statement wallet purchase outside any transaction, as a request runs it (PostgreSQL).

Every other purchase test runs inside the test's transaction, where the statement
takes a savepoint; here it is its own transaction and a refusal must undo itself.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from catalog.models import Product
from orders.models import Order, OrderEvent
from payments.models import Payment
from tests.conftest import assert_error, client_for
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.orders.conftest import buy, fund
from wallets.models import Account, Entry, Posting

pytestmark = [pytest.mark.django_db(transaction=True)]


def _rows() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Order, Payment, OrderEvent, Entry, Posting))


@pytest.fixture
def buyer():
    return CustomerFactory.create()


@pytest.fixture
def product():
    return ProductFactory.create(merchant=MerchantFactory.create(), price=1000, stock=3, fulfillment="KEY-1")


def test_statement_when_wallet_short_then_402_and_nothing_written(buyer, product):
    wallet = fund(buyer, 999)
    before = _rows()
    assert_error(buy(client_for(buyer), product.pk), 402, "insufficient_funds", "amount")
    assert _rows() == before
    assert Product.objects.get(pk=product.pk).stock == 3  # the stock the statement took came back
    assert Account.objects.get(pk=wallet).balance == 999


def test_statement_when_out_of_stock_then_409_and_nothing_written(buyer):
    sold_out = ProductFactory.create(merchant=MerchantFactory.create(), price=1000, stock=0)
    fund(buyer, 5000)
    before = _rows()
    assert_error(buy(client_for(buyer), sold_out.pk), 409, "out_of_stock", "quantity")
    assert _rows() == before


def test_statement_when_price_changed_after_terms_remembered_then_bought_at_new_price(buyer, product):
    wallet = fund(buyer, 5000)
    client = client_for(buyer)
    assert buy(client, product.pk).status_code == 201  # this process now remembers price 1000
    Product.objects.filter(pk=product.pk).update(price=1500)

    response = buy(client, product.pk)

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == 1500
    assert Order.objects.filter(product=product).count() == 2
    assert Account.objects.get(pk=wallet).balance == 5000 - 1000 - 1500
    assert Product.objects.get(pk=product.pk).stock == 1
    call_command("ledger_verify")


def test_statement_when_product_withdrawn_after_terms_remembered_then_404_and_nothing_written(buyer, product):
    fund(buyer, 5000)
    client = client_for(buyer)
    assert buy(client, product.pk).status_code == 201
    Product.objects.filter(pk=product.pk).update(is_active=False)
    before = _rows()

    assert_error(buy(client, product.pk), 404, "not_found", "product")
    assert _rows() == before


def test_statement_when_bought_then_rows_agree_with_the_ledger(buyer, product):
    wallet = fund(buyer, 5000)
    response = buy(client_for(buyer), product.pk, quantity=2)
    assert response.status_code == 201, response.content
    order = Order.objects.select_related("payment").get(pk=response.json()["id"])
    assert (order.status, order.amount, order.fee + order.merchant_net) == ("paid", 2000, 2000)
    assert order.payment is not None
    assert (order.payment.status, order.payment.amount) == ("succeeded", 2000)
    entry = Entry.objects.get(reference=order.pk)
    postings = {p.account_id: (p.amount, p.balance_after) for p in entry.postings.all()}
    merchant_wallet = Account.objects.get(owner_id=order.merchant_id).pk
    assert postings[wallet] == (-2000, 3000)
    assert postings[merchant_wallet] == (order.merchant_net, order.merchant_net)
    assert OrderEvent.objects.get(order=order).dispatched_at is not None  # nobody subscribed
    assert Product.objects.get(pk=product.pk).stock == 1
    call_command("ledger_verify")
