"""OpenAPI helpers: the error envelope as a documented response shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorEnvelope = inline_serializer(
    name="ErrorEnvelope",
    fields={
        "error": inline_serializer(
            name="Error",
            fields={
                "type": serializers.CharField(),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "param": serializers.CharField(allow_null=True),
                "request_id": serializers.CharField(allow_null=True),
                "decline_code": serializers.CharField(required=False),
            },
        )
    },
)

_DESCRIPTIONS = {
    400: "validation_error (with param), limit_exceeded, payment_method_invalid",
    401: "authentication_failed or token_invalid",
    402: "insufficient_funds or card_declined",
    403: "permission_denied",
    404: "not_found",
    409: "conflict: out_of_stock, invalid_status, already_refunded, refund_exceeds_payment, idempotency_key_in_use",
    413: "payload_too_large",
    422: "idempotency_key_reused",
    429: "rate_limited",
    502: "stripe_unavailable",
}


def errors(*statuses: int) -> dict[int, Any]:
    """The documented error responses of an operation: ``responses={**errors(400, 404)}``."""
    return {status: OpenApiResponse(ErrorEnvelope, description=_DESCRIPTIONS.get(status, "")) for status in statuses}
