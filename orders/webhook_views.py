"""The merchant webhook API: endpoints, secret rotation, a test ping, the delivery log and retries.

Thin: a serializer validates, one service or selector works, a serializer renders (docs/webhooks.md).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsMerchant
from accounts.request import signed_in_user
from config.pagination import CursorPagination
from config.schema import errors
from config.throttling import UserThrottle, WriteThrottledMixin
from orders import webhook_selectors as selectors
from orders.models import DeliveryAttempt, WebhookEndpoint
from orders.services import webhook_endpoints as services
from orders.webhook_serializers import (
    DeliveryAttemptSerializer,
    DeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    WebhookEndpointWithSecretSerializer,
)

TAGS = ["merchant webhooks"]


class WebhookEndpointListCreateView(WriteThrottledMixin, generics.ListAPIView):
    """A merchant's webhook endpoints for order events (see docs/webhooks.md)."""

    serializer_class = WebhookEndpointSerializer
    permission_classes = (IsMerchant,)
    write_throttle_classes = (UserThrottle,)

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return WebhookEndpoint.objects.none()
        return selectors.webhook_endpoints_of(merchant=signed_in_user(self.request))

    @extend_schema(responses={200: WebhookEndpointSerializer(many=True), **errors(400, 401, 403)}, tags=TAGS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointWithSecretSerializer, **errors(400, 401, 403, 429)},
        tags=TAGS,
        summary="Register a URL for signed order events",
        description="The response carries the signing secret (whsec_…), shown only once.",
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_create(merchant=signed_in_user(request), **serializer.validated_data)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(APIView):
    permission_classes = (IsMerchant,)

    @extend_schema(responses={200: WebhookEndpointSerializer, **errors(401, 403, 404)}, tags=TAGS)
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = selectors.webhook_endpoint_of(merchant=signed_in_user(request), endpoint_id=endpoint_id)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointSerializer, **errors(400, 401, 403, 404)},
        tags=TAGS,
        summary="Change the URL, the event filter or enabled (enabling clears the failure streak)",
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        serializer = WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(
            merchant=signed_in_user(request), endpoint_id=endpoint_id, **serializer.validated_data
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None, **errors(401, 403, 404)}, tags=TAGS, summary="Stop sending events to a URL")
    def delete(self, request: Request, endpoint_id: str) -> Response:
        services.webhook_endpoint_delete(merchant=signed_in_user(request), endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateView(WriteThrottledMixin, APIView):
    permission_classes = (IsMerchant,)
    write_throttle_classes = (UserThrottle,)

    @extend_schema(
        request=None,
        responses={200: WebhookEndpointWithSecretSerializer, **errors(401, 403, 404)},
        tags=TAGS,
        summary="A new signing secret, answered once; the old one keeps signing beside it for 24 h",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = services.webhook_endpoint_rotate_secret(merchant=signed_in_user(request), endpoint_id=endpoint_id)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)


class WebhookEndpointTestView(WriteThrottledMixin, APIView):
    permission_classes = (IsMerchant,)
    write_throttle_classes = (UserThrottle,)

    @extend_schema(
        request=None,
        responses={201: DeliverySerializer, **errors(401, 403, 404)},
        tags=TAGS,
        summary="Send a ping event now",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        delivery = services.webhook_endpoint_test(merchant=signed_in_user(request), endpoint_id=endpoint_id)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_201_CREATED)


class WebhookDeliveryListView(generics.ListAPIView):
    serializer_class = DeliveryAttemptSerializer
    permission_classes = (IsMerchant,)
    pagination_class = CursorPagination

    def get_queryset(self) -> QuerySet[DeliveryAttempt]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return DeliveryAttempt.objects.none()
        endpoint = selectors.webhook_endpoint_of(
            merchant=signed_in_user(self.request), endpoint_id=self.kwargs["endpoint_id"]
        )
        return selectors.webhook_attempts_of(endpoint=endpoint)

    @extend_schema(
        responses={200: DeliveryAttemptSerializer(many=True), **errors(401, 403, 404)},
        tags=TAGS,
        summary="Every attempt of the last 30 days, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WebhookDeliveryRetryView(WriteThrottledMixin, APIView):
    permission_classes = (IsMerchant,)
    write_throttle_classes = (UserThrottle,)

    @extend_schema(
        request=None,
        responses={200: DeliverySerializer, **errors(401, 403, 404)},
        tags=TAGS,
        summary="Send a delivery again now (same event, same webhook-id)",
    )
    def post(self, request: Request, endpoint_id: str, delivery_id: str) -> Response:
        delivery = services.webhook_delivery_retry(
            merchant=signed_in_user(request), endpoint_id=endpoint_id, delivery_id=delivery_id
        )
        return Response(DeliverySerializer(delivery).data)
