"""Domain errors of the payments app, and the one translator of Stripe's errors.

Every Stripe call goes through ``payments.gateway``, which turns a
``stripe.StripeError`` into the contract's code with ``translate_stripe_error``.
"""

from __future__ import annotations

import logging

import stripe

from config.errors import (
    CardDeclined,
    DomainError,
    InternalError,
    PaymentMethodInvalid,
    StripeUnavailable,
)

logger = logging.getLogger(__name__)

# Stripe error codes that mean "this card cannot be charged", whatever the HTTP status.
_DECLINE_CODES = frozenset(
    {
        "card_declined",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "insufficient_funds",
        "processing_error",
        "authentication_required",
        "payment_intent_authentication_failure",
        "payment_intent_payment_attempt_failed",
        "card_decline_rate_limit_exceeded",
    }
)
# Codes that say the payment method itself is unusable here.
_INVALID_METHOD_CODES = frozenset(
    {
        "payment_method_not_available",
        "payment_method_unactivated",
        "payment_method_unexpected_state",
        "payment_method_invalid_parameter",
        "payment_method_provider_decline",
        "resource_missing",
    }
)


class StripeRefused(DomainError):
    """Stripe answered but refused a request we built (a bug or a state we did not expect)."""

    code = "internal_error"
    status = 500
    type = "api_error"
    default_message = "The card processor refused the request."


def is_unavailable(exc: BaseException) -> bool:
    """Timeouts, connection failures, rate limits and 5xx: the outcome is unknown, retry later."""
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    if isinstance(exc, stripe.APIError):
        return True
    return isinstance(exc, stripe.StripeError) and (exc.http_status or 0) >= 500


def translate_stripe_error(exc: stripe.StripeError, *, param: str | None = None) -> DomainError:
    """Maps one Stripe error onto the contract's error table."""
    if is_unavailable(exc):
        logger.warning("stripe unavailable", extra={"stripe_error": type(exc).__name__, "detail": str(exc)[:200]})
        return StripeUnavailable()
    error = getattr(exc, "error", None)
    code = getattr(exc, "code", None) or getattr(error, "code", None) or ""
    decline_code = getattr(error, "decline_code", None) if error is not None else None
    message = getattr(error, "message", None) or "The card was declined."
    if isinstance(exc, stripe.CardError) or code in _DECLINE_CODES or exc.http_status == 402:
        extra = {"decline_code": decline_code} if decline_code else {}
        return CardDeclined(message, param=param, **extra)
    unknown_object = exc.http_status == 404 and param is not None
    if (
        unknown_object
        or code in _INVALID_METHOD_CODES
        or (getattr(error, "param", None) or "").startswith("payment_method")
    ):
        return PaymentMethodInvalid("The payment method cannot be used.", param=param)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        logger.error("stripe rejected our credentials", extra={"stripe_error": type(exc).__name__})
        return InternalError()
    logger.error("stripe refused a request", extra={"stripe_error": type(exc).__name__, "detail": str(exc)[:300]})
    return StripeRefused()
