"""Request id, access log, body-size guard and the API's last-resort error envelope."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import empty

from config.errors import InternalError, PayloadTooLarge, error_response, mark_logged, translate
from config.request_context import request_id_var, user_id_var

access_log = logging.getLogger("access")
error_log = logging.getLogger("config.errors")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Paths whose last part is a secret (a download link's token, a licence key): logged without it.
_SECRET_PATH = re.compile(r"^(/api/v1/(?:downloads|licenses)/)[^/]+$")


def _new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _user_id(request: HttpRequest) -> str | None:
    """The authenticated user's id: from the JWT (set by the authenticator) or the session.

    A session user is only read if something during the request already loaded
    it, so the access log never costs a query of its own.
    """
    user_id = user_id_var.get()
    if user_id is not None:
        return user_id
    user = getattr(request, "user", None)
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return str(user.pk) if user.is_authenticated else None


class RequestIdMiddleware:
    """Gives every request an id (echoing a sane ``X-Request-ID``), logs one access line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else _new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        started = time.perf_counter()
        try:
            response = self._guarded(request)
            response["X-Request-ID"] = request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": _SECRET_PATH.sub(r"\1…", request.path),
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "user_id": _user_id(request),
                },
            )
            return response
        finally:
            request_id_var.reset(token)
            user_id_var.reset(user_token)

    def _guarded(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.method == "PUT" and request.path.endswith("/file"):  # PUT products/{id}/file: a product file
            limit = settings.MAX_UPLOAD_BYTES + 64 * 1024  # room for the multipart envelope
        if limit is not None and length > limit and _is_api(request):
            return error_response(PayloadTooLarge(f"The request body exceeds {limit} bytes."))
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """An exception escaping a non-DRF view under /api/ still gets the envelope.

        Also with DEBUG on, where Django would otherwise answer with its HTML
        debug page. The full detail goes to the log, never into the body.
        """
        if not _is_api(request):
            return None
        error = translate(exception)
        if error is not None:
            return error_response(error)
        error_log.error("unhandled error in API request", exc_info=exception)
        response = error_response(InternalError())
        mark_logged(response)
        return response
