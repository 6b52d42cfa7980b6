"""The dashboard's overview, sales, exports, balance and webhook portal through Django's test client."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config.money import Money
from orders.models import EventDelivery, Order
from orders.sales_reports import CSV_HEADER
from orders.services.terms import terms_forget
from orders.services.webhook_endpoints import webhook_endpoint_create
from tests.conftest import client_for
from tests.factories import CustomerFactory, MerchantFactory, ProductFactory
from tests.orders.conftest import Receiver
from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Account, Posting

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_product_terms() -> Any:
    terms_forget()
    yield
    terms_forget()


@pytest.fixture
def dashboard(merchant: Any) -> Client:
    client = Client()
    client.force_login(merchant)
    return client


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.close()


def _fmt(amount: int) -> str:
    return str(Money(amount, settings.PLATFORM_CURRENCY))


def _sell(merchant: Any, price: int = 1000, quantity: int = 1) -> Order:
    product = ProductFactory.create(merchant=merchant, price=price, stock=50)
    buyer = CustomerFactory.create()
    wallet_adjust(account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=100_000, reason="t", actor=None)
    body = {"product": product.id, "payment_method": "wallet", "quantity": quantity}
    response = client_for(buyer).post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["id"])


def _csv(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode())))


# --- every page, and nobody else's objects ----------------------------------------------------------


NEW_PAGES = ["/dashboard/balance/", "/dashboard/sales.csv", "/dashboard/statement.csv?month=2026-01"]


@pytest.mark.parametrize("path", NEW_PAGES)
def test_new_pages_when_anonymous_then_login(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/dashboard/login/" in response["Location"]


@pytest.mark.parametrize("path", NEW_PAGES)
def test_new_pages_when_customer_signed_in_then_403(client: Client, path: str) -> None:
    client.force_login(CustomerFactory.create())
    assert client.get(path).status_code == 403


def test_webhook_pages_when_other_merchants_endpoint_or_delivery_then_404(dashboard: Client, merchant: Any) -> None:
    theirs = webhook_endpoint_create(merchant=MerchantFactory.create(), url="http://127.0.0.1:9/x")
    mine = webhook_endpoint_create(merchant=merchant, url="http://127.0.0.1:9/y")
    dashboard.post(f"/dashboard/webhooks/{mine.id}/test/")
    my_delivery = EventDelivery.objects.get(endpoint=mine)

    assert dashboard.get(f"/dashboard/webhooks/{theirs.id}/").status_code == 404
    for action in ("rotate", "test", "toggle", "delete"):
        assert dashboard.post(f"/dashboard/webhooks/{theirs.id}/{action}/").status_code == 404
    # My delivery through their endpoint's address, and their endpoint's address with my delivery: both unknown.
    assert dashboard.post(f"/dashboard/webhooks/{theirs.id}/deliveries/{my_delivery.id}/retry/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.deleted_at is None and theirs.enabled and not theirs.previous_secret


def test_sale_detail_when_order_of_another_merchant_then_404_and_no_refund(dashboard: Client) -> None:
    order = _sell(MerchantFactory.create())
    response = dashboard.post(f"/dashboard/sales/{order.id}/", {"amount": "", "reason": "", "confirm": "yes"})
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == "paid"


# --- overview -----------------------------------------------------------------------------------------


def test_overview_when_sales_then_periods_chart_and_table_show_them(dashboard: Client, merchant: Any) -> None:
    today = _sell(merchant, price=1000)
    old = _sell(merchant, price=2500)
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    ancient = _sell(merchant, price=7000)
    Order.objects.filter(pk=ancient.pk).update(created_at=timezone.now() - timedelta(days=40))

    page = dashboard.get("/dashboard/").content.decode()

    rows = page.split('<tr data-period="')[1:]
    assert f'<td class="num">1</td><td class="num">{_fmt(1000)}</td>' in rows[0]  # today
    assert f'<td class="num">1</td><td class="num">{_fmt(1000)}</td>' in rows[1]  # 7 days
    assert f'<td class="num">2</td><td class="num">{_fmt(3500)}</td>' in rows[2]  # 30 days
    assert f'<td class="num">{_fmt(today.fee + old.fee)}</td>' in rows[2]
    chart = page.split('<svg id="revenue-chart"')[1].split("</svg>")[0]
    assert chart.count("<rect") == 30
    assert f"{timezone.localdate().isoformat()}: {_fmt(1000)}, 1 sale" in chart
    assert "<script" not in page and "http://" not in chart and "https://" not in page.split("</head>")[0]
    assert f"<td>{timezone.localdate().isoformat()}</td><td>1</td><td>{_fmt(1000)}</td>" in page  # the table
    assert 'id="withdrawable"' in page and 'id="incoming"' in page


def test_overview_when_no_sales_then_empty_state_and_flat_chart(dashboard: Client) -> None:
    page = dashboard.get("/dashboard/").content.decode()
    assert "No sales yet" in page
    assert 'height="0.0"' in page


# --- sales: filters, search, CSV -------------------------------------------------------------------------


def test_sales_when_filtered_by_dates_status_and_search_then_only_matches(dashboard: Client, merchant: Any) -> None:
    recent, older = _sell(merchant), _sell(merchant)
    Order.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=5))
    day = (timezone.localdate() - timedelta(days=5)).isoformat()

    def listed(query: str) -> set[str]:
        page = dashboard.get(f"/dashboard/sales/?{query}").content.decode()
        return {o for o in (recent.id, older.id) if o in page}

    assert listed("") == {recent.id, older.id}
    assert listed(f"since={day}&until={day}") == {older.id}
    assert listed(f"since={timezone.localdate().isoformat()}") == {recent.id}
    assert listed(f"q={older.id}") == {older.id}
    assert listed("status=refunded") == set()
    assert "No sales match these filters." in dashboard.get("/dashboard/sales/?status=refunded").content.decode()
    bad = dashboard.get(f"/dashboard/sales/?since={timezone.localdate().isoformat()}&until={day}")
    assert "before the start date" in bad.content.decode()


def test_sales_csv_when_exported_then_header_rows_and_sums_agree_with_overview(
    dashboard: Client, merchant: Any
) -> None:
    orders = [_sell(merchant, price=1000), _sell(merchant, price=2000, quantity=2), _sell(merchant, price=333)]
    refund = client_for(merchant).post("/api/v1/refunds", {"order": orders[0].id, "amount": 250}, format="json")
    assert refund.status_code == 201, refund.content
    _sell(MerchantFactory.create())  # someone else's sale is never exported

    response = dashboard.get("/dashboard/sales.csv")

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert rows[0] == list(CSV_HEADER)
    assert ",".join(rows[0]) == "order,created_at,product,quantity,amount,fee,net,currency,status,amount_refunded"
    by_id = {row[0]: dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]}
    assert set(by_id) == {o.id for o in orders}
    assert by_id[orders[0].id]["status"] == "partially_refunded"
    assert by_id[orders[0].id]["amount_refunded"] == "250"
    assert by_id[orders[1].id]["quantity"] == "2"
    for column in ("amount", "fee", "net", "amount_refunded"):
        total = sum(int(row[column]) for row in by_id.values())
        assert total > 0
    gross = sum(int(r["amount"]) for r in by_id.values())
    fees = sum(int(r["fee"]) for r in by_id.values())
    net = sum(int(r["net"]) for r in by_id.values())
    assert gross == fees + net
    page = dashboard.get("/dashboard/").content.decode()
    thirty = page.split('<tr data-period="2">')[1].split("</tr>")[0]
    assert thirty == (
        f'<th scope="row">30 days</th><td class="num">3</td><td class="num">{_fmt(gross)}</td>'
        f'<td class="num">{_fmt(fees)}</td><td class="num">{_fmt(250)}</td><td class="num">{_fmt(net)}</td>'
    )


def test_sales_csv_when_filtered_then_only_those_rows(dashboard: Client, merchant: Any) -> None:
    first, second = _sell(merchant), _sell(merchant)
    client_for(merchant).post("/api/v1/refunds", {"order": second.id}, format="json")

    rows = _csv(dashboard.get("/dashboard/sales.csv?status=refunded&since=&until="))

    assert [row[0] for row in rows[1:]] == [second.id]
    assert first.id not in str(rows)
    assert dashboard.get("/dashboard/sales.csv?since=yesterday").status_code == 400


# --- refund through a confirmation step -------------------------------------------------------------


def test_refund_when_reviewed_then_confirmation_page_and_nothing_refunded_yet(dashboard: Client, merchant: Any) -> None:
    order = _sell(merchant, price=1000)

    review = dashboard.post(f"/dashboard/sales/{order.id}/", {"amount": "3.00", "reason": "damaged"})

    assert review.status_code == 200
    page = review.content.decode()
    assert f'id="confirm-amount">{_fmt(300)}' in page
    assert 'name="confirm" value="yes"' in page and "damaged" in page
    order.refresh_from_db()
    assert order.status == "paid"

    done = dashboard.post(f"/dashboard/sales/{order.id}/", {"amount": "3.00", "reason": "damaged", "confirm": "yes"})
    assert done.status_code == 302
    order.refresh_from_db()
    assert order.status == "partially_refunded" and order.payment is not None
    assert order.payment.amount_refunded == 300
    detail = dashboard.get(f"/dashboard/sales/{order.id}/").content.decode()
    assert "order.partially_refunded" not in detail or "Events sent" in detail
    assert "damaged" in detail and "Refund ref_" in detail


# --- balance and the monthly statement ---------------------------------------------------------------


def test_balance_when_sales_and_withdrawal_then_ledger_lines_with_running_balances(
    dashboard: Client, merchant: Any
) -> None:
    order = _sell(merchant, price=2000)
    response = dashboard.post("/dashboard/balance/", {"amount": "5.00"})
    assert response.status_code == 302

    page = dashboard.get("/dashboard/balance/").content.decode()

    assert f'<td class="num">{_fmt(order.merchant_net)}</td>' in page
    assert f'<td class="num">{_fmt(order.merchant_net - 500)}</td>' in page  # the balance after the hold
    assert "wdr_" in page and "Pending" in page
    assert "Withdrawal requested" in page or "requested" in page


def test_statement_when_month_exported_then_opening_lines_closing_agree_with_ledger(
    dashboard: Client, merchant: Any
) -> None:
    sales = [_sell(merchant, price=1000), _sell(merchant, price=1500), _sell(merchant, price=700)]
    dashboard.post("/dashboard/balance/", {"amount": "5.00"})
    today = timezone.localdate()
    month = today.strftime("%Y-%m")
    following = (today.replace(day=1) + timedelta(days=32)).strftime("%Y-%m")

    rows = _csv(dashboard.get(f"/dashboard/statement.csv?month={month}"))

    assert rows[0] == ["date", "transaction", "kind", "reference", "amount", "balance", "currency"]
    assert rows[1][2] == "opening_balance" and rows[-1][2] == "closing_balance"
    opening, closing = int(rows[1][5]), int(rows[-1][5])
    lines = rows[2:-1]
    assert opening == 0
    assert [line[3] for line in lines][:3] == [o.id for o in sales]
    assert [line[2] for line in lines] == ["purchase", "purchase", "purchase", "withdrawal_hold"]
    assert closing == opening + sum(int(line[4]) for line in lines)
    assert int(lines[-1][5]) == closing  # the running balance ends where the statement does
    account = Account.objects.get(owner=merchant)
    assert closing == account.balance == Posting.objects.filter(account=account).aggregate(s=Sum("amount"))["s"]
    # The next month opens where this one closed, with no lines yet.
    after = _csv(dashboard.get(f"/dashboard/statement.csv?month={following}"))
    assert [row[2] for row in after[1:]] == ["opening_balance", "closing_balance"]
    assert int(after[1][5]) == int(after[2][5]) == closing
    assert dashboard.get("/dashboard/statement.csv?month=2026-13").status_code == 400


# --- webhook portal --------------------------------------------------------------------------------


def test_webhook_portal_when_rotated_and_tested_then_new_secret_once_and_receiver_verifies(
    dashboard: Client, merchant: Any, receiver: Any
) -> None:
    created = dashboard.post("/dashboard/webhooks/", {"url": receiver.url, "events": ["order.paid"]})
    assert created.status_code == 200
    old = created.context["created"].secret
    endpoint_id = created.context["created"].id

    rotated = dashboard.post(f"/dashboard/webhooks/{endpoint_id}/rotate/")
    new = rotated.context["secret"]
    assert new != old and new in rotated.content.decode()
    assert new not in dashboard.get(f"/dashboard/webhooks/{endpoint_id}/").content.decode()

    tested = dashboard.post(f"/dashboard/webhooks/{endpoint_id}/test/", follow=True)
    assert "Ping delivered" in tested.content.decode()
    headers, body = receiver.requests[-1]
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    log = tested.content.decode()
    assert "ping" in log and headers["webhook-id"] in log

    receiver.statuses = [500]
    dashboard.post(f"/dashboard/webhooks/{endpoint_id}/test/")
    failed = EventDelivery.objects.filter(endpoint_id=endpoint_id, status="pending").get()
    retried = dashboard.post(f"/dashboard/webhooks/{endpoint_id}/deliveries/{failed.id}/retry/", follow=True)
    assert "succeeded" in retried.content.decode()
    assert receiver.requests[-1][0]["webhook-id"] == receiver.requests[-2][0]["webhook-id"] == failed.event_id

    disabled = dashboard.post(f"/dashboard/webhooks/{endpoint_id}/toggle/", {"enabled": "0"}, follow=True)
    assert "Endpoint disabled" in disabled.content.decode()


# --- products: code pools, files, sold counts -----------------------------------------------------------


def _codes_product(dashboard: Client) -> str:
    response = dashboard.post(
        "/dashboard/products/new/", {"name": "Game keys", "price": "4.00", "delivery": "codes", "is_active": "on"}
    )
    assert response.status_code == 302, response.context and response.context["form"].errors
    return response["Location"].rstrip("/").split("/")[-1]


def test_product_codes_when_uploaded_from_text_file_then_stock_and_statuses_shown(
    dashboard: Client, merchant: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    product_id = _codes_product(dashboard)
    upload = SimpleUploadedFile("codes.txt", b"AAA-1\nBBB-2\n\nCCC-3\n", content_type="text/plain")

    response = dashboard.post(f"/dashboard/products/{product_id}/codes/", {"codes_file": upload}, follow=True)

    page = response.content.decode()
    assert "Added 3 codes; 3 available to sell." in page
    assert '<dd id="stock">3</dd>' in page and "AAA-1" in page and "Available" in page
    buyer = CustomerFactory.create()
    wallet_adjust(account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=5000, reason="t", actor=None)
    bought = client_for(buyer).post(
        "/api/v1/orders", {"product": product_id, "payment_method": "wallet"}, format="json"
    )
    assert bought.status_code == 201, bought.content
    page = dashboard.get(f"/dashboard/products/{product_id}/").content.decode()
    assert '<dd id="stock">2</dd>' in page and '<dd id="sold">1</dd>' in page
    assert "Sold" in page and bought.json()["id"] in page
    listing = dashboard.get("/dashboard/products/").content.decode()
    assert '<td class="num">2</td>\n      <td class="num">1</td>' in listing  # stock, sold

    again = SimpleUploadedFile("codes.txt", b"DDD-4\nAAA-1\n", content_type="text/plain")
    refused = dashboard.post(f"/dashboard/products/{product_id}/codes/", {"codes_file": again})
    assert refused.status_code == 200
    assert "already in the pool" in str(refused.context["codes_form"].errors["codes_file"])


def test_product_file_when_uploaded_then_name_size_and_hash_shown(dashboard: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = dashboard.post(
        "/dashboard/products/new/", {"name": "E-book", "price": "9.00", "delivery": "file", "is_active": "on"}
    )
    product_id = response["Location"].rstrip("/").split("/")[-1]
    upload = SimpleUploadedFile("book.pdf", b"%PDF-1.4 tiny", content_type="application/pdf")

    page = dashboard.post(f"/dashboard/products/{product_id}/file/", {"file": upload}, follow=True).content.decode()

    assert "Stored book.pdf (13 bytes" in page and 'id="product-file"' in page


def test_product_create_when_text_without_content_or_codes_with_stock_then_errors_beside_fields(
    dashboard: Client,
) -> None:
    text = dashboard.post("/dashboard/products/new/", {"name": "X", "price": "1.00", "delivery": "text"})
    assert "needs the content" in str(text.context["form"].errors["fulfillment"])
    codes = dashboard.post(
        "/dashboard/products/new/", {"name": "X", "price": "1.00", "delivery": "codes", "stock": "3"}
    )
    assert "leave it empty" in str(codes.context["form"].errors["stock"])
    assert 'class="field invalid"' in codes.content.decode()


def test_product_pages_when_other_merchants_product_then_404(dashboard: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    theirs = ProductFactory.create(merchant=MerchantFactory.create())
    assert dashboard.get(f"/dashboard/products/{theirs.id}/").status_code == 404
    upload = SimpleUploadedFile("codes.txt", b"X\n")
    assert dashboard.post(f"/dashboard/products/{theirs.id}/codes/", {"codes_file": upload}).status_code == 404
    upload = SimpleUploadedFile("f.bin", b"X")
    assert dashboard.post(f"/dashboard/products/{theirs.id}/file/", {"file": upload}).status_code == 404


def test_sale_detail_when_code_product_sold_then_goods_listed_with_the_code_and_status(
    dashboard: Client, merchant: Any
) -> None:
    from catalog.services import product_codes_add, product_create

    product = product_create(merchant=merchant, name="Tickets", price=700, delivery="codes")
    product_codes_add(merchant=merchant, product_id=product.pk, codes=["TICKET-0001", "TICKET-0002"])
    buyer = CustomerFactory.create()
    wallet_adjust(account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=5000, reason="t", actor=None)
    order = {"product": product.pk, "payment_method": "wallet"}
    bought = client_for(buyer).post("/api/v1/orders", order, format="json")
    assert bought.status_code == 201, bought.content
    sold_code = bought.json()["goods"][0]["value"]

    page = dashboard.get(f"/dashboard/sales/{bought.json()['id']}/").content.decode()

    assert sold_code in page and "Active" in page
    unsold = ({"TICKET-0001", "TICKET-0002"} - {sold_code}).pop()
    assert unsold not in page  # only what this order delivered
