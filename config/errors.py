"""The one error envelope of the API, and the domain errors every app raises.

Services raise ``DomainError`` subclasses; views never build error JSON. The
DRF exception handler and the Django 404/500 handlers below render every
non-2xx API response as::

    {"error": {"type": …, "code": …, "message": …, "param": …, "request_id": …}}
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import redis.exceptions
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from kombu.exceptions import OperationalError as BrokerUnavailable
from rest_framework import exceptions as drf_exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from config.request_context import current_request_id

logger = logging.getLogger("config.errors")

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
CARD = "card_error"
IDEMPOTENCY = "idempotency_error"
RATE_LIMIT = "rate_limit_error"
API = "api_error"


class DomainError(Exception):
    """A failure the client can act on, with its contract code and HTTP status."""

    code = "invalid_request"
    status = 400
    type = INVALID_REQUEST
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, param: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.param = param
        self.extra = extra
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message, "param": self.param}
        body.update(self.extra)
        return body


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 400
    default_message = "The request is not valid."


class AuthenticationFailed(DomainError):
    code = "authentication_failed"
    status = 401
    type = AUTHENTICATION
    default_message = "Authentication credentials were missing or wrong."


class TokenInvalid(DomainError):
    code = "token_invalid"
    status = 401
    type = AUTHENTICATION
    default_message = "The token is invalid or expired."


class PermissionDeniedError(DomainError):
    code = "permission_denied"
    status = 403
    type = PERMISSION
    default_message = "You do not have permission to do this."


class FourEyesRequired(DomainError):
    code = "four_eyes_required"
    status = 403
    type = PERMISSION
    default_message = "A second, different staff user must approve this."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "No such object."


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    status = 402
    default_message = "The balance is too low."


class CardDeclined(DomainError):
    code = "card_declined"
    status = 402
    type = CARD
    default_message = "The card was declined."


class PaymentMethodInvalid(DomainError):
    code = "payment_method_invalid"
    status = 400
    type = CARD
    default_message = "The payment method cannot be used."


class OutOfStock(DomainError):
    code = "out_of_stock"
    status = 409
    default_message = "The product is out of stock."


class InvalidStatus(DomainError):
    code = "invalid_status"
    status = 409
    default_message = "The object is not in a state that allows this."


class AlreadyRefunded(DomainError):
    code = "already_refunded"
    status = 409
    default_message = "The payment is already fully refunded."


class RefundExceedsPayment(DomainError):
    code = "refund_exceeds_payment"
    status = 409
    default_message = "The refund exceeds what is left of the payment."


class LimitExceeded(DomainError):
    code = "limit_exceeded"
    status = 400
    default_message = "The amount is outside the allowed limits."


class IdempotencyKeyInUse(DomainError):
    code = "idempotency_key_in_use"
    status = 409
    type = IDEMPOTENCY
    default_message = "A request with this Idempotency-Key is still being processed."


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422
    type = IDEMPOTENCY
    default_message = "This Idempotency-Key was used with a different request."


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    type = RATE_LIMIT
    default_message = "Too many requests."


class StripeUnavailable(DomainError):
    code = "stripe_unavailable"
    status = 502
    type = API
    default_message = "The card processor did not answer; try again later."


class MethodNotAllowed(DomainError):
    code = "method_not_allowed"
    status = 405
    default_message = "This method is not allowed here."


class NotAcceptable(DomainError):
    code = "not_acceptable"
    status = 406
    default_message = "Only application/json responses are available."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class InternalError(DomainError):
    code = "internal_error"
    status = 500
    type = API
    default_message = "Something went wrong on our side. The request id identifies it in our logs."


# A backing service gone for a moment (the database restarting, Redis or the broker bounced): 503, retry.
UNAVAILABLE = (OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, BrokerUnavailable)


class ServiceUnavailable(DomainError):
    """503: the database (or another backing service) cannot be reached for a moment, e.g. while it restarts."""

    code = "service_unavailable"
    status = 503
    type = API
    default_message = "The service is briefly unavailable; retry shortly (with the same Idempotency-Key)."


def envelope(error: DomainError) -> dict[str, Any]:
    body = error.as_dict()
    body["request_id"] = current_request_id()
    return {"error": body}


def mark_logged(response: HttpResponse) -> None:
    """Tells Django's request logger that this 5xx was logged already, with its traceback."""
    # Django's log_response reads this flag and offers no public way to set it.
    response._has_been_logged = True  # type: ignore[attr-defined]  # noqa: SLF001


def error_response(error: DomainError, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(envelope(error), status=error.status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _first_validation_error(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    """Walks DRF's nested error detail to the first message and its dotted param."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                param = prefix.rstrip(".") or None
                _, message = _first_validation_error(value)
                return param, message
            return _first_validation_error(value, f"{prefix}{key}.")
    if isinstance(detail, list) and detail:
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                if item:
                    return _first_validation_error(item, f"{prefix}{index}.")
                continue
            return prefix.rstrip(".") or None, str(item)
    return prefix.rstrip(".") or None, str(detail)


def translate(exc: Exception) -> DomainError | None:
    """Maps framework exceptions onto the contract's codes; None for unknown ones."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, (InvalidToken, TokenError)):
        return TokenInvalid()
    if isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        return ValidationFailed(message, param=param)
    if isinstance(exc, UNAVAILABLE):  # the database or Redis went away (restart, failover): retry, not a bug
        return ServiceUnavailable()
    if isinstance(exc, RecursionError):
        # Only the JSON parser recurses on client data: a body nested thousands deep.
        return ValidationFailed("Malformed request body: nested too deeply.")
    if isinstance(exc, drf_exceptions.ParseError):
        return ValidationFailed(f"Malformed request body: {exc.detail}")
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return ValidationFailed("The request body must be JSON (Content-Type: application/json).")
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return AuthenticationFailed(str(exc.detail))
    if isinstance(exc, (drf_exceptions.PermissionDenied, DjangoPermissionDenied)):
        return PermissionDeniedError()
    if isinstance(exc, drf_exceptions.NotFound) and str(exc.detail) == str(CursorPagination.invalid_cursor_message):
        # DRF answers an unreadable ?cursor= 404; it is a malformed parameter.
        return ValidationFailed("Invalid cursor.", param="cursor")
    if isinstance(exc, (drf_exceptions.NotFound, Http404)):
        return NotFound()
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return NotAcceptable()
    if isinstance(exc, drf_exceptions.Throttled):
        wait = int(getattr(exc, "wait", None) or 1)
        return RateLimited(f"Too many requests; retry in {wait} s.", retry_after=wait)
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    error = translate(exc)
    logged = False
    if error is None:
        logger.exception("unhandled error in API view", exc_info=exc)
        error = InternalError()
        logged = True
    response = Response(envelope(error), status=error.status)
    if logged:
        mark_logged(response)
    if isinstance(error, RateLimited):
        response["Retry-After"] = str(error.extra.get("retry_after", 1))
    if isinstance(error, ServiceUnavailable):
        response["Retry-After"] = "1"
    if isinstance(error, AuthenticationFailed | TokenInvalid):
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_response(NotFound(f"Unknown path {request.path}."))
    return render(request, "404.html", status=404)


def handler500(request: HttpRequest) -> HttpResponse:
    if isinstance(sys.exc_info()[1], UNAVAILABLE):  # raised outside a view (a middleware's query)
        unavailable = ServiceUnavailable()
        if _is_api(request):
            return error_response(unavailable, headers={"Retry-After": "1"})
        return HttpResponse(unavailable.message, status=503, content_type="text/plain", headers={"Retry-After": "1"})
    if _is_api(request):
        return error_response(InternalError())
    return render(request, "500.html", status=500)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_response(PermissionDeniedError())
    return render(request, "403.html", status=403)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_response(ValidationFailed("Bad request."))
    return HttpResponse("Bad request", status=400, content_type="text/plain")
