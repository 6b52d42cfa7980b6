"""``Idempotency-Key`` for every POST of the API, in one middleware.

The first request with a key claims it by inserting a row (unique per scope
and key) in its own committed transaction, so the claim holds across gunicorn
workers and machines. When the view has answered, the response is stored on
the row and every later request with the same key and the same body gets it
back with ``Idempotent-Replayed: true``; nothing runs again.

- Scope: the user of a valid Bearer access token (checked from the token
  alone, no query), otherwise the client's IP address.
- Same key, other method/path/body: ``422 idempotency_key_reused``.
- Same key while the first request still runs: ``409 idempotency_key_in_use``.
- What is stored: every answer given after the platform began work, 5xx
  included (as Stripe does): a 502 after the order was committed is replayed,
  never run again. Answers refused before any work (400 ``validation_error``,
  401, 403, 404, 405, 413, 415, 429) release the claim so the client can fix
  the request. ``auth/*`` is never claimed nor stored: its answers carry tokens.
- Secrets never rest in the table: a stored body has the values of
  ``SECRET_FIELDS`` (tokens, webhook secrets, client secrets) replaced by a
  marker. A replay answers them as ``null`` and names them in
  ``Idempotent-Redacted``; the client reads them again from the object
  (``GET orders/{id}`` gives a card order's ``client_secret``; a webhook secret
  is never shown twice: ``rotate-secret`` makes a new one). We refuse to replay
  a secret rather than keep it.
- The fingerprint is an HMAC-SHA256 keyed with a key derived from
  ``SECRET_KEY`` (``salted_hmac``): the table never holds a plain hash of a body
  (which may hold a password).
- While the view runs, ``current_request_key()`` names the request (a keyed
  HMAC of scope and key): payments records it on the payment it creates, so a
  request run again (a takeover after a crash) resumes that payment instead of
  creating a second one, and the Stripe idempotency keys derive from it.
- A claim left ``in_progress`` longer than ``IDEMPOTENCY_LOCK_TIMEOUT`` (a
  worker died mid-request) may be taken over; the timestamp of the claim is
  the fencing token, so the late worker can no longer overwrite it.
- Keys live ``IDEMPOTENCY_TTL`` (24 h); ``config.tasks.purge_idempotency_keys``
  deletes the expired ones, and an expired key found on the way is reused.

A request without the header costs nothing here: no parsing, no query.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import remember_user, remember_validated_token, user_from_row, user_select
from accounts.models import IdempotencyKey, IdempotencyKeyStatus
from config import metrics
from config.db import insert_unless_taken_reading, prepared_cursor
from config.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    PayloadTooLarge,
    ValidationFailed,
    error_response,
)
from config.redaction import redacted_body, redaction_lifted
from config.request_keys import request_key_for, request_key_set

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
META_KEY = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
REDACTED_HEADER = "Idempotent-Redacted"
MAX_KEY_LENGTH = 255
DEFAULT_LOCK_TIMEOUT = timedelta(minutes=5)
# Answers that mean the request was refused before any work: the claim is released.
REFUSED_BEFORE_WORK = frozenset({401, 403, 404, 405, 413, 415, 429})
# Paths whose answers are never kept (they carry tokens).
UNSTORED_PREFIXES = ("/api/v1/auth/",)
_FINGERPRINT_SALT = "config.idempotency.fingerprint"
_CLAIM_ATTEMPTS = 3
SCOPE_LENGTH: int = IdempotencyKey._meta.get_field("scope").max_length  # type: ignore[assignment]
_TABLE = IdempotencyKey._meta.db_table


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """HMAC-SHA256 (key derived from SECRET_KEY) over method, path and body; a JSON body is compared by its
    content, not its spacing or key order."""
    canonical = body
    if body:
        try:
            canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except (ValueError, RecursionError):
            canonical = body
    message = b""
    for part in (method.upper().encode(), path.encode("utf-8", "surrogateescape"), canonical):
        message += len(part).to_bytes(8, "big") + part
    return salted_hmac(_FINGERPRINT_SALT, message, algorithm="sha256").hexdigest()


def client_ip(request: HttpRequest) -> str:
    """The client's address, trusting ``NUM_PROXIES`` hops of X-Forwarded-For as DRF's throttles do."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES")
    if num_proxies is None or not forwarded:
        return remote
    if num_proxies == 0:
        return remote
    addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
    if not addresses:
        return remote
    return addresses[-min(num_proxies, len(addresses))]


def request_scope(request: HttpRequest) -> tuple[str, str | None]:
    """``usr:<id>`` from a valid Bearer access token (signature and expiry only, no query), else ``ip:<addr>``;
    and the token's user id (None without one)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    parts = header.split()
    if len(parts) == 2 and parts[0] in jwt_settings.AUTH_HEADER_TYPES:
        try:
            token = AccessToken(parts[1])
        except TokenError:
            token = None
        if token is not None:
            remember_validated_token(request, parts[1].encode(), token)
            user_id = token.get(jwt_settings.USER_ID_CLAIM)
            if user_id:
                return f"usr:{user_id}"[:SCOPE_LENGTH], str(user_id)
    return f"ip:{client_ip(request)}"[:SCOPE_LENGTH], None


def _lock_timeout() -> timedelta:
    return getattr(settings, "IDEMPOTENCY_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)


def _error_code(response: HttpResponse) -> str | None:
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None


def _should_store(response: HttpResponse) -> bool:
    """Every answer after work began, 5xx included; not the refusals that come before any work."""
    if response.streaming:
        return False
    status = response.status_code
    if status in REFUSED_BEFORE_WORK:
        return False
    return not (status == 400 and _error_code(response) == "validation_error")


def _replay(row: IdempotencyKey) -> HttpResponse:
    body, found = redaction_lifted(bytes(row.response_body or b""))
    response = HttpResponse(body, status=row.response_status or 200, content_type=row.response_content_type or None)
    response[REPLAYED_HEADER] = "true"
    metrics.count_idempotent_replay()
    if found:
        response[REDACTED_HEADER] = ",".join(sorted(found))
    return response


class IdempotencyMiddleware:
    """Claims, replays or refuses POSTs to the API that carry an ``Idempotency-Key``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or META_KEY not in request.META or not request.path.startswith("/api/"):
            return self.get_response(request)
        if request.path.startswith(UNSTORED_PREFIXES):
            return self.get_response(request)

        key = request.META[META_KEY]
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            return error_response(
                ValidationFailed(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters long.", param=HEADER)
            )
        try:
            body = request.body
        except RequestDataTooBig:
            return error_response(PayloadTooLarge())

        scope, user_id = request_scope(request)
        path = request.get_full_path()
        fingerprint = request_fingerprint(request.method, path, body)
        row, answer, new = self._claim(
            request, scope=scope, user_id=user_id, key=key, fingerprint=fingerprint, path=path
        )
        if answer is not None:
            return answer
        assert row is not None

        try:
            with request_key_set(request_key_for(scope, key), new=new):
                response = self.get_response(request)
        except BaseException:
            # No answer was given: the retry runs again and resumes what this one began
            # (payments find their payment by ``current_request_key()``).
            self._release(row)
            raise
        if _should_store(response):
            self._complete(row, response)
        else:
            self._release(row)
        return response

    def _claim(
        self, request: HttpRequest, *, scope: str, user_id: str | None, key: str, fingerprint: str, path: str
    ) -> tuple[IdempotencyKey | None, HttpResponse | None, bool]:
        """Inserts the claim, or answers from the row another request left: replay, 409 or 422. The flag is
        True for a claim inserted just now (``current_request_is_new``), False for one taken over.

        For a token's user the first insert also reads the user row (one round trip, not two), which the
        view's authentication then takes (``remember_user``)."""
        for attempt in range(_CLAIM_ATTEMPTS):
            now = timezone.now()
            row = IdempotencyKey(
                scope=scope,
                key=key,
                request_hash=fingerprint,
                method="POST",
                path=path[:512],
                created_at=now,
                locked_at=now,
                expires_at=now + settings.IDEMPOTENCY_TTL,
            )
            beside = user_select(user_id) if user_id is not None and attempt == 0 else None
            inserted, user_row = insert_unless_taken_reading(row, unique=("scope", "key"), beside=beside)
            if beside is not None:
                remember_user(request, None if user_row is None else user_from_row(user_row))
            if inserted:
                return row, None, True

            existing = IdempotencyKey.objects.filter(scope=scope, key=key).first()
            if existing is None:  # released between our insert and this read
                continue
            if existing.expires_at <= now:
                IdempotencyKey.objects.filter(pk=existing.pk, expires_at__lte=now).delete()
                continue
            if existing.request_hash != fingerprint:
                return (
                    None,
                    error_response(
                        IdempotencyKeyReused(f"This {HEADER} was already used with a different request.", param=HEADER)
                    ),
                    False,
                )
            if existing.status == IdempotencyKeyStatus.COMPLETED:
                return None, _replay(existing), False
            if existing.locked_at <= now - _lock_timeout():
                taken = IdempotencyKey.objects.filter(
                    pk=existing.pk, status=IdempotencyKeyStatus.IN_PROGRESS, locked_at=existing.locked_at
                ).update(locked_at=now)
                if taken:
                    logger.warning("idempotency claim abandoned, taken over", extra={"scope": scope})
                    existing.locked_at = now
                    return existing, None, False
                continue
            break
        return None, error_response(IdempotencyKeyInUse(param=HEADER)), False

    @staticmethod
    def _complete(row: IdempotencyKey, response: HttpResponse) -> None:
        # One plain statement (autocommit), fenced by the claim's timestamp: on every API POST with a key.
        locked_at = IdempotencyKey._meta.get_field("locked_at").get_db_prep_save(row.locked_at, connection)
        try:
            stored = IdempotencyMiddleware._store(row, response, locked_at)
        except DatabaseError:  # the database went away after the answer: the claim is taken over later
            logger.warning("idempotency answer could not be stored", extra={"scope": row.scope}, exc_info=True)
            return
        if not stored:
            logger.warning("idempotency claim lost before completion", extra={"scope": row.scope})

    @staticmethod
    def _store(row: IdempotencyKey, response: HttpResponse, locked_at: Any) -> int:
        with prepared_cursor() as cursor:
            cursor.execute(
                f"UPDATE {_TABLE} SET status = %s, response_status = %s, response_content_type = %s,"  # noqa: S608
                " response_body = %s WHERE id = %s AND status = %s AND locked_at = %s",
                [
                    IdempotencyKeyStatus.COMPLETED.value,
                    response.status_code,
                    str(response.get("Content-Type", ""))[:128],
                    redacted_body(bytes(response.content)),
                    row.pk,
                    IdempotencyKeyStatus.IN_PROGRESS.value,
                    locked_at,
                ],
            )
            return cursor.rowcount

    @staticmethod
    def _release(row: IdempotencyKey) -> None:
        IdempotencyKey.objects.filter(
            pk=row.pk, status=IdempotencyKeyStatus.IN_PROGRESS, locked_at=row.locked_at
        ).delete()


def purge_expired(*, now: Any = None, batch_size: int = 5000) -> int:
    """Deletes expired keys in batches (short transactions); returns how many."""
    now = now or timezone.now()
    deleted = 0
    while True:
        ids = list(IdempotencyKey.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        count, _ = IdempotencyKey.objects.filter(pk__in=ids).delete()
        deleted += count
        if len(ids) < batch_size:
            return deleted


def document_idempotency_key(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every POST documents the header and its error answers."""
    parameter = {
        "in": "header",
        "name": HEADER,
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": r"^[\x21-\x7e]+$"},
        "description": (
            "Makes the POST safe to retry for 24 h: a repeat with the same body gets the first response back "
            f"with `{REPLAYED_HEADER}: true`; another body gets 422, a repeat while the first runs gets 409."
        ),
    }
    envelope_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    answers = {
        "400": "validation_error: the Idempotency-Key header is malformed",
        "409": "idempotency_key_in_use: the first request with this key is still running",
        "422": "idempotency_key_reused: this key was used with a different request",
    }
    has_envelope = "ErrorEnvelope" in result.get("components", {}).get("schemas", {})
    for path, item in result.get("paths", {}).items():
        operation = item.get("post")
        if operation is None or not path.startswith("/api/"):
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("in") == "header" and p.get("name") == HEADER for p in parameters):
            parameters.append(dict(parameter))
        if not has_envelope:
            continue
        responses = operation.setdefault("responses", {})
        for status, description in answers.items():
            responses.setdefault(
                status, {"description": description, "content": {"application/json": {"schema": envelope_ref}}}
            )
    return result
