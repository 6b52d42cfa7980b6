"""Hostile input: every bad value is a 400 (or 413) in the envelope and nothing is written."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import IdempotencyKey, User
from catalog.models import Product
from orders.models import Order
from payments.models import Payment, Refund
from tests.api.helpers import fund
from tests.conftest import assert_error, client_for
from tests.factories import PASSWORD, CustomerFactory, MerchantFactory, ProductFactory
from wallets.models import Deposit, Entry, Posting, Withdrawal

WATCHED = (User, Product, Order, Payment, Refund, Deposit, Withdrawal, Entry, Posting, IdempotencyKey)

# Amounts: only a positive integer of minor units is money.
BAD_AMOUNTS = [
    1.5,
    10.0,
    "1000",
    "10.50",
    "",
    "1e3",
    -1,
    0,
    -(2**63),
    2**63,
    2**64,
    10**30,
    True,
    False,
    None,
    [1000],
    {"amount": 1000},
]

SQL = "'; DROP TABLE accounts_user; --"
HTML = "<script>alert(document.cookie)</script>"
LONG = "x" * 10_000
NUL = "abc\x00def"
EMOJI_LONG = "\U0001f642" * 300


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in WATCHED}


@pytest.fixture
def world(db):
    """A funded customer, a merchant with a product, and their clients."""
    customer = CustomerFactory.create()
    merchant = MerchantFactory.create()
    fund(customer, 1_000_000)
    product = ProductFactory.create(merchant=merchant, price=1000, stock=100)
    return {
        "customer": client_for(customer),
        "merchant": client_for(merchant),
        "product": product,
    }


def _valid_bodies(world) -> dict[str, tuple[str, str, dict]]:
    """Per target: (who, path, a body that would be accepted)."""
    return {
        "withdrawal": ("customer", "/api/v1/wallet/withdrawals", {"amount": 600}),
        "deposit": ("customer", "/api/v1/wallet/deposits", {"amount": 1000, "payment_method": "pm_card_visa"}),
        "product": ("merchant", "/api/v1/products", {"name": "Thing", "price": 1000, "fulfillment": "KEY"}),
        "order": ("customer", "/api/v1/orders", {"product": world["product"].pk, "payment_method": "wallet"}),
        "refund": ("merchant", "/api/v1/refunds", {"order": "ord_" + "0" * 26}),
    }


def _post_hostile(world, target: str, field: str, value, **extra):
    who, path, body = _valid_bodies(world)[target]
    before = _counts()
    response = world[who].post(path, {**body, field: value}, format="json", **extra)
    return response, before


AMOUNT_TARGETS = [
    ("withdrawal", "amount"),
    ("deposit", "amount"),
    ("product", "price"),
    ("order", "quantity"),
    ("refund", "amount"),
]


@pytest.mark.parametrize(("target", "field"), AMOUNT_TARGETS)
@pytest.mark.parametrize("value", BAD_AMOUNTS, ids=repr)
def test_amount_when_not_a_positive_integer_then_400_and_nothing_written(world, target, field, value):
    response, before = _post_hostile(world, target, field, value, HTTP_IDEMPOTENCY_KEY=f"{target}-{value!r}")

    assert_error(response, 400, "validation_error", field)
    assert _counts() == before


@pytest.mark.parametrize("value", [1.5, "5", -1, 2**31, 2**63, True, [], {}], ids=repr)
def test_product_stock_when_not_a_count_then_400_and_nothing_written(world, value):
    response, before = _post_hostile(world, "product", "stock", value)

    assert_error(response, 400, "validation_error", "stock")
    assert _counts() == before


STRING_CASES = [
    ("product", "name", LONG),
    ("product", "name", ""),
    ("product", "name", NUL),
    ("product", "name", ["a"]),
    ("product", "description", "d" * 5001),
    ("product", "fulfillment", "f" * 5001),
    ("product", "fulfillment", "   "),
    ("product", "is_active", "maybe"),
    ("order", "product", SQL),
    ("order", "product", HTML),
    ("order", "product", LONG),
    ("order", "product", NUL),
    ("order", "payment_method", "bitcoin"),
    ("order", "payment_method", SQL),
    ("order", "card", LONG),
    ("refund", "order", SQL),
    ("refund", "order", HTML),
    ("refund", "order", "ord_" + "\U0001f642" * 26),
    ("refund", "reason", LONG),
    ("deposit", "payment_method", LONG),
    ("deposit", "payment_method", NUL),
]


@pytest.mark.parametrize(("target", "field", "value"), STRING_CASES, ids=lambda v: repr(v)[:40])
def test_string_field_when_hostile_then_400_or_404_and_nothing_written(world, target, field, value):
    response, before = _post_hostile(world, target, field, value)

    assert response.status_code in (400, 404), (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] in ("validation_error", "not_found", "payment_method_invalid"), error
    assert _counts() == before


REGISTER_CASES = [
    ("email", LONG + "@example.test"),
    ("email", "not-an-email"),
    ("email", SQL),
    ("email", HTML + "@example.test"),
    ("email", NUL + "@example.test"),
    ("email", EMOJI_LONG + "@example.test"),
    ("password", LONG),
    ("password", 12345678),
    ("role", "staff"),
    ("role", "admin"),
    ("role", SQL),
    ("role", None),
    ("first_name", LONG),
    ("last_name", NUL),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), REGISTER_CASES, ids=lambda v: repr(v)[:40])
def test_register_when_field_hostile_then_400_and_no_user(api, field, value):
    body = {"email": "ok@example.test", "password": PASSWORD, "role": "customer", field: value}

    response = api.post("/api/v1/auth/register", body, format="json")

    assert_error(response, 400, "validation_error", field)
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_register_when_privilege_fields_sent_then_ignored(api):
    body = {"email": "sneaky@example.test", "password": PASSWORD, "role": "customer"}

    response = api.post(
        "/api/v1/auth/register", {**body, "is_staff": True, "is_superuser": True, "id": "usr_x"}, format="json"
    )

    assert response.status_code == 201
    user = User.objects.get(email="sneaky@example.test")
    assert not user.is_staff
    assert not user.is_superuser
    assert user.pk != "usr_x"


@pytest.mark.django_db
def test_login_when_sql_injection_in_email_then_401_and_users_intact(api, customer):
    response = api.post("/api/v1/auth/token", {"email": f"{customer.email}' OR '1'='1", "password": SQL}, format="json")

    assert response.status_code in (400, 401)
    assert "access" not in response.json()
    assert User.objects.filter(pk=customer.pk).exists()


def test_product_name_with_html_and_unicode_is_stored_verbatim_and_served_as_json(world):
    name = HTML + " Ürün 🙂 مرحبا"

    response = world["merchant"].post(
        "/api/v1/products", {"name": name, "price": 1000, "fulfillment": "KEY"}, format="json"
    )

    assert response.status_code == 201, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["name"] == name


def test_product_currency_when_unknown_or_foreign_then_not_taken(world):
    for currency in ("xyz", "EUR", "", 840, None):
        response = world["merchant"].post(
            "/api/v1/products",
            {"name": "Thing", "price": 1000, "fulfillment": "KEY", "currency": currency},
            format="json",
        )
        if response.status_code == 201:
            assert response.json()["currency"] == settings.PLATFORM_CURRENCY
        else:
            assert_error(response, 400, "validation_error", "currency")


# --- malformed bodies and wrong content types ------------------------------------------

MALFORMED = [
    b'{"amount": ',
    b"{amount: 600}",
    b"{'amount': 600}",
    b'{"amount": NaN}',
    b'{"amount": Infinity}',
    b'{"amount": 600,}',
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    b'"amount"',
    b"600",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
]


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: repr(b[:20]))
@pytest.mark.parametrize("target", ["withdrawal", "order", "product"])
def test_malformed_json_then_400_and_nothing_written(world, target, body):
    who, path, _ = _valid_bodies(world)[target]
    before = _counts()

    response = world[who].post(path, body, content_type="application/json")

    assert_error(response, 400, "validation_error")
    assert _counts() == before


CONTENT_TYPES = [
    ("text/plain", b'{"amount": 600}'),
    ("application/x-www-form-urlencoded", b"amount=600"),
    ("multipart/form-data; boundary=xx", b'--xx\r\nContent-Disposition: form-data; name="amount"\r\n\r\n600\r\n--xx--'),
    ("application/xml", b"<amount>600</amount>"),
    ("", b'{"amount": 600}'),
]


@pytest.mark.parametrize(("content_type", "body"), CONTENT_TYPES, ids=[c for c, _ in CONTENT_TYPES])
def test_wrong_content_type_then_400_and_nothing_written(world, content_type, body):
    before = _counts()

    response = world["customer"].generic("POST", "/api/v1/wallet/withdrawals", body, content_type=content_type)

    assert_error(response, 400, "validation_error")
    assert _counts() == before


@pytest.mark.parametrize("with_key", [False, True])
def test_body_over_upload_limit_then_413_and_nothing_written(world, with_key):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"name": "x" * (limit + 10), "price": 1000, "fulfillment": "KEY"})
    extra = {"HTTP_IDEMPOTENCY_KEY": "huge"} if with_key else {}
    before = _counts()

    response = world["merchant"].post("/api/v1/products", body, content_type="application/json", **extra)

    assert_error(response, 413, "payload_too_large")
    assert _counts() == before


def test_body_under_upload_limit_with_oversized_field_then_400(world):
    body = {"name": "x" * 200_000, "price": 1000, "fulfillment": "KEY"}
    before = _counts()

    response = world["merchant"].post("/api/v1/products", body, format="json")

    assert_error(response, 400, "validation_error", "name")
    assert _counts() == before


# --- hostile query strings and path parameters --------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"search={SQL}",
        f"search={HTML}",
        "search=%00",
        f"merchant={SQL}",
        "min_price=abc",
        "max_price=1.5",
        "min_price=-1",
        f"max_price={2**70}",
        "in_stock=maybe",
        "limit=-1",
        "limit=abc",
        f"limit={10**20}",
        "cursor=not-a-cursor",
        f"cursor={LONG[:2000]}",
    ],
)
def test_product_list_with_hostile_query_then_200_or_400_never_500(world, query):
    response = world["customer"].get(f"/api/v1/products?{query}")

    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert_error(response, 400, "validation_error")
    assert Product.objects.filter(pk=world["product"].pk).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders/{bad}",
        "/api/v1/products/{bad}",
        "/api/v1/payments/{bad}",
        "/api/v1/refunds/{bad}",
        "/api/v1/wallet/withdrawals/{bad}",
        "/api/v1/wallet/deposits/{bad}",
    ],
)
@pytest.mark.parametrize("bad", ["1", "'%20OR%20'1'='1", "%3Cscript%3E", "ord_" + "Z" * 200, "%F0%9F%99%82"])
def test_detail_with_hostile_id_then_404_in_envelope(world, path, bad):
    response = world["customer"].get(path.format(bad=bad))

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/orders", "/api/v1/payments", "/api/v1/wallet/transactions"])
def test_list_with_unreadable_cursor_then_400_on_param_cursor(world, path):
    response = world["customer"].get(f"{path}?cursor=not-a-cursor")

    assert_error(response, 400, "validation_error", "cursor")


def test_every_table_still_exists_after_injection_attempts(world):
    world["customer"].post("/api/v1/orders", {"product": SQL, "payment_method": "wallet"}, format="json")
    world["customer"].get(f"/api/v1/products?search={SQL}")

    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    assert {"accounts_user", "orders_order", "wallets_posting", "catalog_product"} <= tables


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", value) for value in (1.5, "1000", -1, 0, 2**63, True, None)]
    + [("stock", value) for value in (1.5, "5", -1, 2**63, False)]
    + [("name", value) for value in ("", LONG, NUL, None, ["x"])]
    + [("is_active", value) for value in ("maybe", 2, None)],
    ids=lambda v: repr(v)[:30],
)
def test_product_patch_when_field_hostile_then_400_and_product_unchanged(world, field, value):
    product = world["product"]
    before = Product.objects.filter(pk=product.pk).values().get()

    response = world["merchant"].patch(f"/api/v1/products/{product.pk}", {field: value}, format="json")

    assert_error(response, 400, "validation_error", field)
    assert Product.objects.filter(pk=product.pk).values().get() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), [("first_name", LONG), ("last_name", NUL), ("first_name", ["x"])])
def test_profile_patch_when_field_hostile_then_400_and_unchanged(customer_api, field, value):
    response = customer_api.patch("/api/v1/me", {field: value}, format="json")

    assert_error(response, 400, "validation_error", field)
    customer_api.user.refresh_from_db()
    assert getattr(customer_api.user, field) != value
