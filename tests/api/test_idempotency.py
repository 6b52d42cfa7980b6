"""Idempotency-Key on POSTs: claim, replay, refusal, release, expiry, purge."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import IdempotencyKey, IdempotencyKeyStatus, User
from config.idempotency import IdempotencyMiddleware, request_fingerprint
from config.tasks import purge_idempotency_keys
from tests.conftest import assert_error, client_for
from tests.factories import PASSWORD

REGISTER = "/api/v1/auth/register"


def _register_body(email: str = "new@example.test") -> dict:
    return {"email": email, "password": PASSWORD, "role": "customer"}


def _post(client: APIClient, path: str, body: dict, key: str | None, **extra):
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(path, body, format="json", **extra)


WITHDRAW = "/api/v1/wallet/withdrawals"


@pytest.fixture
def wd_api(customer_api):
    """A customer with money to withdraw: POST wallet/withdrawals does work worth replaying."""
    from tests.api.helpers import fund

    fund(customer_api.user, 100_000)
    return customer_api


def _scope(client) -> str:
    return f"usr:{client.user.pk}"


@pytest.mark.django_db
def test_withdrawal_with_key_when_repeated_then_replays_first_response_and_creates_once(wd_api):
    from wallets.models import Withdrawal

    first = _post(wd_api, WITHDRAW, {"amount": 600}, "key-1")
    second = _post(wd_api, WITHDRAW, {"amount": 600}, "key-1")

    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]
    assert Withdrawal.objects.count() == 1
    assert IdempotencyKey.objects.get().status == IdempotencyKeyStatus.COMPLETED


@pytest.mark.django_db
def test_auth_with_key_when_repeated_then_nothing_stored_and_no_token_rests_in_table(api):
    first = _post(api, REGISTER, _register_body(), "key-1")
    second = _post(api, REGISTER, _register_body(), "key-1")

    assert first.status_code == 201
    assert "access" in first.json()
    assert second.status_code == 400
    assert "Idempotent-Replayed" not in second
    assert IdempotencyKey.objects.count() == 0
    assert User.objects.filter(email="new@example.test").count() == 1


@pytest.mark.django_db
def test_key_when_reused_with_other_body_then_422_and_nothing_done(wd_api):
    from wallets.models import Withdrawal

    assert _post(wd_api, WITHDRAW, {"amount": 600}, "key-2").status_code == 201

    response = _post(wd_api, WITHDRAW, {"amount": 700}, "key-2")

    error = assert_error(response, 422, "idempotency_key_reused", "Idempotency-Key")
    assert error["type"] == "idempotency_error"
    assert list(Withdrawal.objects.values_list("amount", flat=True)) == [600]


@pytest.mark.django_db
def test_key_when_reused_on_other_path_then_422(customer_api):
    IdempotencyKey.objects.create(
        scope=f"usr:{customer_api.user.pk}",
        key="k2",
        request_hash=request_fingerprint("POST", "/api/v1/auth/logout", b"{}"),
        method="POST",
        path="/api/v1/auth/logout",
        status=IdempotencyKeyStatus.COMPLETED,
        response_status=204,
        response_body=b"",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    response = _post(customer_api, "/api/v1/me/password", {}, "k2")

    assert_error(response, 422, "idempotency_key_reused", "Idempotency-Key")


@pytest.mark.django_db
def test_key_when_body_differs_only_in_spacing_and_key_order_then_replayed(customer_api):
    body = {"old_password": PASSWORD, "new_password": "Fresh-Pass-2"}
    path = "/api/v1/me/password"
    first = customer_api.post(path, json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = customer_api.post(path, reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")

    assert first.status_code == 204
    assert second.status_code == 204
    assert second["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_fingerprint_when_stored_then_keyed_hmac_not_a_plain_hash_of_the_body(customer_api, settings):
    import hashlib

    body = {"old_password": PASSWORD, "new_password": "Fresh-Pass-2"}
    _post(customer_api, "/api/v1/me/password", body, "fp")
    row = IdempotencyKey.objects.get()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    plain = hashlib.sha256()
    for part in (b"POST", b"/api/v1/me/password", canonical):
        plain.update(len(part).to_bytes(8, "big"))
        plain.update(part)

    assert row.request_hash != plain.hexdigest()
    assert row.request_hash == request_fingerprint("POST", "/api/v1/me/password", canonical)
    settings.SECRET_KEY = "another-secret-key-another-secret-key-another-secret-key"
    assert request_fingerprint("POST", "/api/v1/me/password", canonical) != row.request_hash


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "bad\x01key"])
def test_key_when_empty_too_long_or_unprintable_then_400_and_nothing_done(wd_api, key):
    from wallets.models import Withdrawal

    response = _post(wd_api, WITHDRAW, {"amount": 600}, key)

    assert_error(response, 400, "validation_error", "Idempotency-Key")
    assert Withdrawal.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
def test_key_of_255_characters_is_accepted(wd_api):
    key = "k" * 255

    assert _post(wd_api, WITHDRAW, {"amount": 600}, key).status_code == 201
    assert _post(wd_api, WITHDRAW, {"amount": 600}, key)["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_key_when_first_attempt_fails_validation_then_released_for_fixed_retry(wd_api):
    bad = _post(wd_api, WITHDRAW, {"amount": "six"}, "k")
    assert_error(bad, 400, "validation_error", "amount")
    assert IdempotencyKey.objects.count() == 0

    fixed = _post(wd_api, WITHDRAW, {"amount": 600}, "k")

    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed


@pytest.mark.django_db
def test_key_when_used_by_two_users_then_each_has_own_scope(customer, merchant):
    customer_api, merchant_api = client_for(customer), client_for(merchant)

    a = _post(customer_api, "/api/v1/me/password", {"old_password": PASSWORD, "new_password": "Fresh-Pass-2"}, "same")
    b = _post(merchant_api, "/api/v1/me/password", {"old_password": PASSWORD, "new_password": "Other-Pass-3"}, "same")

    assert a.status_code == 204
    assert b.status_code == 204
    assert "Idempotent-Replayed" not in b
    assert set(IdempotencyKey.objects.values_list("scope", flat=True)) == {f"usr:{customer.pk}", f"usr:{merchant.pk}"}


@pytest.mark.django_db
def test_key_when_anonymous_callers_differ_in_ip_then_scopes_differ():
    for address in ("10.0.0.1", "10.0.0.2"):
        request = RequestFactory().post("/api/v1/anything", b"{}", content_type="application/json")
        request.META.update(HTTP_IDEMPOTENCY_KEY="same", REMOTE_ADDR=address)
        assert IdempotencyMiddleware(lambda req: JsonResponse({}, status=201))(request).status_code == 201

    assert set(IdempotencyKey.objects.values_list("scope", flat=True)) == {"ip:10.0.0.1", "ip:10.0.0.2"}


@pytest.mark.django_db
def test_key_when_token_invalid_then_401_not_stored(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = _post(api, "/api/v1/me/password", {"old_password": "a", "new_password": "b"}, "k")

    assert_error(response, 401, "token_invalid")
    assert IdempotencyKey.objects.count() == 0


def _claim_row(client, key: str, body: bytes, **fields) -> IdempotencyKey:
    return IdempotencyKey.objects.create(
        scope=_scope(client),
        key=key,
        request_hash=request_fingerprint("POST", WITHDRAW, body),
        method="POST",
        path=WITHDRAW,
        expires_at=timezone.now() + timedelta(hours=23),
        **fields,
    )


@pytest.mark.django_db
def test_key_when_first_request_still_running_then_409(wd_api):
    from wallets.models import Withdrawal

    body = json.dumps({"amount": 600}).encode()
    _claim_row(wd_api, "busy", body)

    response = wd_api.post(WITHDRAW, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="busy")

    error = assert_error(response, 409, "idempotency_key_in_use", "Idempotency-Key")
    assert error["type"] == "idempotency_error"
    assert Withdrawal.objects.count() == 0


@pytest.mark.django_db
def test_key_when_claim_abandoned_past_lock_timeout_then_taken_over(wd_api, settings):
    settings.IDEMPOTENCY_LOCK_TIMEOUT = timedelta(seconds=30)
    body = json.dumps({"amount": 600}).encode()
    _claim_row(wd_api, "stale", body, locked_at=timezone.now() - timedelta(minutes=1))

    response = wd_api.post(WITHDRAW, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="stale")

    assert response.status_code == 201
    assert IdempotencyKey.objects.get().status == IdempotencyKeyStatus.COMPLETED


@pytest.mark.django_db
def test_key_when_expired_then_request_runs_again(wd_api):
    from wallets.models import Withdrawal

    assert _post(wd_api, WITHDRAW, {"amount": 600}, "old").status_code == 201
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = _post(wd_api, WITHDRAW, {"amount": 700}, "old")

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Withdrawal.objects.count() == 2
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.django_db
def test_key_is_kept_for_the_configured_ttl(wd_api, settings):
    before = timezone.now()
    _post(wd_api, WITHDRAW, {"amount": 600}, "ttl")

    row = IdempotencyKey.objects.get()

    assert before + settings.IDEMPOTENCY_TTL <= row.expires_at <= timezone.now() + settings.IDEMPOTENCY_TTL


@pytest.mark.django_db
def test_purge_task_deletes_only_expired_keys(wd_api):
    _post(wd_api, WITHDRAW, {"amount": 600}, "fresh")
    _post(wd_api, WITHDRAW, {"amount": 700}, "stale")
    IdempotencyKey.objects.filter(key="stale").update(expires_at=timezone.now() - timedelta(minutes=1))

    deleted = purge_idempotency_keys.delay().get()

    assert deleted == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


def test_purge_task_is_registered_and_scheduled(settings):
    from config.celery import app

    entries = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "config.tasks.purge_idempotency_keys" in entries
    # A worker imports config.tasks (config is no app, autodiscovery would miss it).
    assert "config.tasks" in app.conf.imports
    assert "config.tasks.purge_idempotency_keys" in app.tasks


# --- the middleware alone: outcomes the API cannot produce on demand -----------


def _middleware_call(answer, key="m-key", body=b'{"a": 1}'):
    request = RequestFactory().post("/api/v1/anything", body, content_type="application/json")
    if key is not None:
        request.META["HTTP_IDEMPOTENCY_KEY"] = key
    calls = []

    def view(req):
        calls.append(req)
        return answer()

    return IdempotencyMiddleware(view)(request), calls


@pytest.mark.django_db
def test_middleware_without_key_does_no_query_and_no_work():
    with CaptureQueriesContext(connection) as queries:
        response, calls = _middleware_call(lambda: JsonResponse({"ok": True}, status=201), key=None)

    assert response.status_code == 201
    assert len(calls) == 1
    assert len(queries) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("status", [500, 502, 503])
def test_middleware_when_view_answers_5xx_after_work_then_kept_and_replayed(status):
    body = {"error": {"code": "stripe_unavailable", "order": "ord_x"}}
    first, _ = _middleware_call(lambda: JsonResponse(body, status=status))
    assert first.status_code == status

    second, calls = _middleware_call(lambda: JsonResponse({"id": "x"}, status=201))

    assert second.status_code == status
    assert second["Idempotent-Replayed"] == "true"
    assert json.loads(second.content) == body
    assert calls == []


@pytest.mark.django_db
def test_middleware_when_answer_holds_secrets_then_table_keeps_none_and_replay_names_them():
    body = {"id": "whk_1", "secret": "whsec_abc", "nested": {"client_secret": "pi_1_secret_2"}, "url": "u"}
    first, _ = _middleware_call(lambda: JsonResponse(body, status=201))
    row = IdempotencyKey.objects.get()
    assert row.response_body is not None
    stored = bytes(row.response_body)

    second, _ = _middleware_call(lambda: HttpResponse("must not run", status=200))

    assert json.loads(first.content) == body
    assert b"whsec_abc" not in stored and b"pi_1_secret_2" not in stored
    assert json.loads(second.content) == {"id": "whk_1", "secret": None, "nested": {"client_secret": None}, "url": "u"}
    assert second["Idempotent-Redacted"] == "client_secret,secret"


@pytest.mark.django_db
def test_middleware_when_view_raises_then_claim_released():
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _middleware_call(boom)

    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "code"), [(402, "insufficient_funds"), (409, "x"), (400, "payment_method_invalid")])
def test_middleware_when_business_refusal_then_stored_and_replayed(status, code):
    body = {"error": {"code": code}}
    first, _ = _middleware_call(lambda: JsonResponse(body, status=status))

    second, calls = _middleware_call(lambda: HttpResponse("must not run", status=200))

    assert first.status_code == status
    assert second.status_code == status
    assert second["Idempotent-Replayed"] == "true"
    assert json.loads(second.content) == body
    assert calls == []


@pytest.mark.django_db
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
def test_middleware_when_request_refused_then_not_stored(status):
    _middleware_call(lambda: JsonResponse({"error": {"code": "validation_error"}}, status=status))

    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
def test_middleware_ignores_non_post_and_non_api_requests():
    factory = RequestFactory()
    middleware = IdempotencyMiddleware(lambda req: HttpResponse(status=200))
    for request in (
        factory.get("/api/v1/me", HTTP_IDEMPOTENCY_KEY="k"),
        factory.post("/stripe/webhook/x/", b"{}", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"),
    ):
        assert middleware(request).status_code == 200

    assert IdempotencyKey.objects.count() == 0


# --- through the money endpoints --------------------------------------------------


@pytest.mark.django_db
def test_order_refused_402_when_retried_after_funding_then_replays_the_refusal(customer_api):
    from orders.models import Order
    from tests.api.helpers import fund
    from tests.factories import ProductFactory

    product = ProductFactory.create(price=1000, stock=5)
    body = {"product": product.pk, "payment_method": "wallet"}
    refused = _post(customer_api, "/api/v1/orders", body, "buy-1")
    assert_error(refused, 402, "insufficient_funds")

    fund(customer_api.user, 5000)
    replay = _post(customer_api, "/api/v1/orders", body, "buy-1")
    fresh = _post(customer_api, "/api/v1/orders", body, "buy-2")

    assert replay.status_code == 402
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.content == refused.content
    assert fresh.status_code == 201
    assert Order.objects.filter(status="paid").count() == 1


@pytest.mark.django_db
def test_withdrawal_when_repeated_with_key_then_held_once(customer_api):
    from tests.api.helpers import balance, fund
    from wallets.models import Withdrawal

    wallet = fund(customer_api.user, 10_000)
    first = _post(customer_api, "/api/v1/wallet/withdrawals", {"amount": 600}, "wd-1")
    second = _post(customer_api, "/api/v1/wallet/withdrawals", {"amount": 600}, "wd-1")

    assert first.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Withdrawal.objects.count() == 1
    assert balance(wallet) == 10_000 - 600


@pytest.mark.django_db
def test_order_key_when_used_by_another_customer_then_their_own_order(customer_api):
    from orders.models import Order
    from tests.api.helpers import fund
    from tests.factories import CustomerFactory, ProductFactory

    other = CustomerFactory.create()
    fund(customer_api.user, 5000)
    fund(other, 5000)
    product = ProductFactory.create(price=1000, stock=5)
    body = {"product": product.pk, "payment_method": "wallet"}

    mine = _post(customer_api, "/api/v1/orders", body, "shared-key")
    theirs = _post(client_for(other), "/api/v1/orders", body, "shared-key")

    assert mine.status_code == 201
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != mine.json()["id"]
    assert Order.objects.count() == 2


# --- the user read beside the claim ------------------------------------------------------


def _user_reads(queries) -> list[str]:
    table = connection.ops.quote_name(User._meta.db_table)
    return [q["sql"] for q in queries if f"FROM {table}" in q["sql"]]


def test_keyed_post_when_signed_in_then_the_claim_reads_the_user_and_the_view_reads_it_no_more(wd_api):
    with CaptureQueriesContext(connection) as queries:
        response = _post(wd_api, WITHDRAW, {"amount": 1000}, "wd-user-beside")

    assert response.status_code == 201, response.content
    reads = _user_reads(queries.captured_queries)
    assert len(reads) == 1, reads  # one look-up of the user in the whole request
    assert "ON CONFLICT" in reads[0] and "LEFT JOIN LATERAL" in reads[0]  # and it is the claim's statement
    assert IdempotencyKey.objects.get(scope=_scope(wd_api), key="wd-user-beside").status == (
        IdempotencyKeyStatus.COMPLETED
    )


def test_keyed_post_when_user_deactivated_after_sign_in_then_401_and_the_claim_released(wd_api):
    User.objects.filter(pk=wd_api.user.pk).update(is_active=False)  # the token is still valid

    response = _post(wd_api, WITHDRAW, {"amount": 1000}, "wd-inactive")

    assert_error(response, 401, "authentication_failed")
    assert not IdempotencyKey.objects.filter(scope=_scope(wd_api), key="wd-inactive").exists()


def test_keyed_post_when_token_names_no_user_then_401_and_no_claim_kept(db):
    from rest_framework_simplejwt.tokens import AccessToken

    gone = User(pk="usr_01NOSUCHUSER000000000000000", email="gone@example.test")  # never saved
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(gone)}")

    response = _post(client, WITHDRAW, {"amount": 1000}, "wd-gone")

    assert_error(response, 401, "authentication_failed")
    assert not IdempotencyKey.objects.filter(scope=f"usr:{gone.pk}", key="wd-gone").exists()
