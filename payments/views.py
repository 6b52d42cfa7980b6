from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_not_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsCustomer, IsMerchantOrStaff
from accounts.request import signed_in_user
from config.pagination import CursorPagination
from config.schema import errors
from config.throttling import PaymentsThrottle, RefundsThrottle, WriteThrottledMixin
from payments import selectors, webhooks
from payments.models import Payment, SavedCard
from payments.serializers import (
    PaymentMethodAttachSerializer,
    PaymentSerializer,
    RefundCreateSerializer,
    RefundSerializer,
    SavedCardSerializer,
    SetupIntentSerializer,
)
from payments.services.cards import (
    payment_method_attach,
    payment_method_detach,
    payment_method_set_default,
    setup_intent_create,
)
from payments.services.refunds import refund_create


class NewestCardsFirst(CursorPagination):
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


class PaymentListView(generics.ListAPIView):
    serializer_class = PaymentSerializer

    def get_queryset(self) -> QuerySet[Payment]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Payment.objects.none()
        return selectors.payments_of(signed_in_user(self.request))

    @extend_schema(
        responses={200: PaymentSerializer(many=True), **errors(400, 401)},
        tags=["payments"],
        summary="Own payments (orders and deposits), newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class PaymentDetailView(APIView):
    @extend_schema(responses={200: PaymentSerializer, **errors(401, 404)}, tags=["payments"], summary="One payment")
    def get(self, request: Request, payment_id: str) -> Response:
        payment = selectors.payment_get(user=signed_in_user(request), payment_id=payment_id)
        return Response(PaymentSerializer(payment).data)


class PaymentMethodListCreateView(WriteThrottledMixin, generics.ListAPIView):
    permission_classes = (IsCustomer,)
    serializer_class = SavedCardSerializer
    pagination_class = NewestCardsFirst
    write_throttle_classes = (PaymentsThrottle,)

    def get_queryset(self) -> QuerySet[SavedCard]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return SavedCard.objects.none()
        return selectors.saved_cards_of(signed_in_user(self.request))

    @extend_schema(
        responses={200: SavedCardSerializer(many=True), **errors(400, 401, 403)},
        tags=["payment methods"],
        summary="Saved cards, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=PaymentMethodAttachSerializer,
        responses={201: SavedCardSerializer, **errors(400, 401, 402, 403, 409, 422, 429, 502)},
        tags=["payment methods"],
        summary="Save a card (a PaymentMethod collected with Stripe.js)",
    )
    def post(self, request: Request) -> Response:
        serializer = PaymentMethodAttachSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        card = payment_method_attach(
            user=signed_in_user(request),
            payment_method_id=serializer.validated_data["payment_method"],
        )
        return Response(SavedCardSerializer(card).data, status=status.HTTP_201_CREATED)


class SetupIntentView(WriteThrottledMixin, APIView):
    permission_classes = (IsCustomer,)
    write_throttle_classes = (PaymentsThrottle,)

    @extend_schema(
        request=None,
        responses={200: SetupIntentSerializer, **errors(401, 403, 409, 422, 429, 502)},
        tags=["payment methods"],
        summary="A SetupIntent client secret for collecting a card client-side",
    )
    def post(self, request: Request) -> Response:
        client_secret = setup_intent_create(user=signed_in_user(request))
        return Response(SetupIntentSerializer({"client_secret": client_secret}).data)


class PaymentMethodDetailView(WriteThrottledMixin, APIView):
    permission_classes = (IsCustomer,)
    write_throttle_classes = (PaymentsThrottle,)

    @extend_schema(
        responses={204: None, **errors(401, 403, 404, 429, 502)},
        tags=["payment methods"],
        summary="Remove a saved card; the newest other card becomes default if it was the default",
    )
    def delete(self, request: Request, payment_method_id: str) -> Response:
        payment_method_detach(user=signed_in_user(request), payment_method_id=payment_method_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PaymentMethodDefaultView(WriteThrottledMixin, APIView):
    permission_classes = (IsCustomer,)
    write_throttle_classes = (PaymentsThrottle,)

    @extend_schema(
        request=None,
        responses={200: SavedCardSerializer, **errors(401, 403, 404, 409, 422, 429)},
        tags=["payment methods"],
        summary="Make a saved card the default",
    )
    def post(self, request: Request, payment_method_id: str) -> Response:
        card = payment_method_set_default(
            user=signed_in_user(request),
            payment_method_id=payment_method_id,
        )
        return Response(SavedCardSerializer(card).data)


class RefundCreateView(WriteThrottledMixin, APIView):
    permission_classes = (IsMerchantOrStaff,)
    write_throttle_classes = (RefundsThrottle,)

    @extend_schema(
        request=RefundCreateSerializer,
        responses={201: RefundSerializer, **errors(400, 401, 402, 403, 404, 409, 422, 429, 502)},
        tags=["refunds"],
        summary="Refund an order, fully or partly (card: through Stripe; wallet: back to the wallet)",
    )
    def post(self, request: Request) -> Response:
        serializer = RefundCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refund = refund_create(
            order_id=serializer.validated_data["order"],
            amount=serializer.validated_data.get("amount"),
            reason=serializer.validated_data["reason"],
            requested_by=signed_in_user(request),
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class RefundDetailView(APIView):
    @extend_schema(responses={200: RefundSerializer, **errors(401, 404)}, tags=["refunds"], summary="One refund")
    def get(self, request: Request, refund_id: str) -> Response:
        refund = selectors.refund_get(user=signed_in_user(request), refund_id=refund_id)
        return Response(RefundSerializer(refund).data)


@csrf_exempt
@login_not_required
@require_POST
def stripe_webhook(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Stripe's deliveries to the endpoint ``uuid`` (dj-stripe's ``WebhookEndpoint``): 200 once stored.

    400 (nothing stored) for a missing, wrong or stale signature, 404 for an
    unknown endpoint; a duplicate delivery answers 200 and does nothing.
    """
    webhooks.stripe_event_receive(
        endpoint_uuid=uuid, body=request.body, signature=request.META.get("HTTP_STRIPE_SIGNATURE")
    )
    return HttpResponse(status=200)
