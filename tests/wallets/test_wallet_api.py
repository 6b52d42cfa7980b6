from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import assert_error
from tests.wallets.conftest import fund


def test_wallet_when_never_used_then_zero_balance(customer_api):
    response = customer_api.get("/api/v1/wallet")
    assert response.status_code == 200
    assert response.json() == {"balance": 0, "withdrawable": 0, "pending": 0, "incoming": 0, "currency": "usd"}


def test_wallet_when_funded_and_withdrawing_then_balance_and_pending(customer_api, customer):
    fund(customer, 10_000)
    assert customer_api.post("/api/v1/wallet/withdrawals", {"amount": 2_500}, format="json").status_code == 201
    assert customer_api.get("/api/v1/wallet").json() == {
        "balance": 7_500,
        "withdrawable": 7_500,
        "pending": 2_500,
        "incoming": 0,
        "currency": "usd",
    }


def test_wallet_when_anonymous_then_401(api):
    assert_error(api.get("/api/v1/wallet"), 401, "authentication_failed")
    assert_error(api.get("/api/v1/wallet/transactions"), 401, "authentication_failed")


def test_wallet_when_bad_token_then_401(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_error(api.get("/api/v1/wallet"), 401, "token_invalid")


def test_transactions_when_several_postings_then_newest_first_with_balances(customer_api, customer):
    fund(customer, 10_000)
    withdrawal = customer_api.post("/api/v1/wallet/withdrawals", {"amount": 1_000}, format="json").json()
    body = customer_api.get("/api/v1/wallet/transactions").json()
    assert body["next"] is None and body["previous"] is None
    newest, oldest = body["results"]
    assert newest["kind"] == "withdrawal_hold"
    assert newest["amount"] == -1_000
    assert newest["balance_before"] == 10_000 and newest["balance_after"] == 9_000
    assert newest["reference"] == withdrawal["id"]
    assert newest["id"].startswith("txn_")
    assert newest["currency"] == "usd"
    assert oldest["kind"] == "adjustment"
    assert oldest["balance_before"] == 0 and oldest["balance_after"] == 10_000
    assert set(newest) == {
        "id",
        "kind",
        "amount",
        "currency",
        "balance_before",
        "balance_after",
        "reference",
        "created_at",
    }


def test_transactions_when_other_users_move_money_then_only_own_postings(customer_api, customer, merchant):
    fund(customer, 1_000)
    fund(merchant, 5_000)
    results = customer_api.get("/api/v1/wallet/transactions").json()["results"]
    assert [row["amount"] for row in results] == [1_000]


def test_transactions_when_many_then_cursor_pages_cover_all_once(customer_api, customer):
    for amount in range(1, 26):
        fund(customer, amount)
    seen: list[int] = []
    url = "/api/v1/wallet/transactions?limit=10"
    pages = 0
    while url:
        body = customer_api.get(url).json()
        seen.extend(row["amount"] for row in body["results"])
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == list(range(25, 0, -1))


def test_transactions_when_limit_above_max_then_capped_at_100(customer_api, customer):
    for _ in range(3):
        fund(customer, 1)
    body = customer_api.get("/api/v1/wallet/transactions?limit=1000").json()
    assert len(body["results"]) == 3


def test_transactions_when_bad_cursor_then_400(customer_api):
    assert_error(customer_api.get("/api/v1/wallet/transactions?cursor=garbage"), 400, "validation_error", "cursor")


def test_transactions_when_page_grows_then_query_count_constant(customer_api, customer):
    fund(customer, 1)
    with CaptureQueriesContext(connection) as small:
        assert customer_api.get("/api/v1/wallet/transactions").status_code == 200
    for _ in range(10):
        fund(customer, 1)
    with CaptureQueriesContext(connection) as large:
        assert len(customer_api.get("/api/v1/wallet/transactions").json()["results"]) == 11
    assert len(large.captured_queries) == len(small.captured_queries)
