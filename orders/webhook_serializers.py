"""Serializers of the merchant webhook API: endpoints (the secret only when created or rotated) and the delivery log.

Rendering only; the services validate URLs and event types.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from orders.models import DeliveryAttempt, DeliveryStatus, EventDelivery, WebhookEndpoint
from orders.rendering import iso
from orders.services.webhook_endpoints import SUBSCRIBABLE_EVENTS


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL that receives signed order events.")
    events = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=len(SUBSCRIBABLE_EVENTS),
        help_text="Event types to send here (order.paid, order.refunded, …); empty or absent: all.",
    )


class WebhookEndpointUpdateSerializer(WebhookEndpointCreateSerializer):
    url = serializers.CharField(max_length=2000, required=False)
    enabled = serializers.BooleanField(required=False)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ("id", "url", "events", "enabled", "disabled_reason", "created_at")


class WebhookEndpointWithSecretSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        help_text="whsec_<base64>: signs every delivery (Standard Webhooks); shown only now."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("id", "url", "events", "enabled", "secret", "created_at")


def attempt_status(attempt: DeliveryAttempt) -> str:
    if attempt.status_code is not None and 200 <= attempt.status_code < 300:
        return DeliveryStatus.SUCCEEDED
    return DeliveryStatus.FAILED


class DeliveryAttemptSerializer(serializers.Serializer):
    """One attempt of one delivery: ``id`` is the delivery (retry it by that id), ``attempt`` its number."""

    id = serializers.CharField(help_text="The delivery (dlv_…); every attempt of it shares the id.")
    event = serializers.CharField(help_text="The event (evt_…), sent as webhook-id.")
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=[DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED])
    response_status = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField()
    attempt = serializers.IntegerField()
    next_retry_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    request = serializers.DictField(help_text="{url, webhook_id, webhook_timestamp, address}")
    response = serializers.DictField(help_text="{status, body (first 500 bytes), error}")

    def to_representation(self, attempt: DeliveryAttempt) -> dict[str, Any]:
        delivery = attempt.delivery
        return {
            "id": delivery.pk,
            "event": delivery.event_id,
            "event_type": delivery.event.type,
            "status": attempt_status(attempt),
            "response_status": attempt.status_code,
            "duration_ms": attempt.duration_ms,
            "attempt": attempt.attempt,
            "next_retry_at": iso(attempt.next_retry_at),
            "created_at": iso(attempt.created_at),
            "request": {
                "url": delivery.url,
                "webhook_id": delivery.event_id,
                "webhook_timestamp": attempt.webhook_timestamp,
                "address": attempt.address,
            },
            "response": {"status": attempt.status_code, "body": attempt.response_excerpt, "error": attempt.error},
        }


class DeliverySerializer(serializers.Serializer):
    """A delivery after a test or a retry: its state and its latest attempt."""

    def to_representation(self, delivery: EventDelivery) -> dict[str, Any]:
        return {
            "id": delivery.pk,
            "event": delivery.event_id,
            "event_type": delivery.event.type,
            "status": delivery.status,
            "response_status": delivery.last_status_code,
            "error": delivery.last_error,
            "attempt": delivery.attempts,
            "next_retry_at": iso(delivery.next_attempt_at) if delivery.status == DeliveryStatus.PENDING else None,
            "created_at": iso(delivery.created_at),
        }
