from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsMerchant
from accounts.request import signed_in_user
from config.schema import errors
from config.throttling import PaymentsThrottle, WriteThrottledMixin
from orders import selectors
from orders.models import Order, OrderStatus
from orders.serializers import (
    OrderCreateSerializer,
    OrderSerializer,
    SaleSerializer,
    SalesQuerySerializer,
)
from orders.services.cancel import order_cancel
from orders.services.purchase import order_place


class OrderListCreateView(WriteThrottledMixin, generics.ListAPIView):
    """The buyer's orders; POST buys a product."""

    serializer_class = OrderSerializer
    permission_classes = (IsAuthenticated,)
    write_throttle_classes = (PaymentsThrottle,)

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Order.objects.none()
        return selectors.orders_of_buyer(buyer=signed_in_user(self.request))

    @extend_schema(
        responses={200: OrderSerializer(many=True), **errors(400, 401)},
        tags=["orders"],
        summary="Your orders, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=OrderCreateSerializer,
        responses={201: OrderSerializer, **errors(400, 401, 402, 403, 404, 409, 422, 429, 502)},
        tags=["orders"],
        summary="Buy a product with the wallet or a card",
        description=(
            "Customers only. Wallet: paid at once, the response carries the fulfillment. Card: the stock is "
            "reserved and the card charged; an order needing customer action comes back pending with a "
            "client_secret. Errors: 404 unknown or unavailable product, 409 out_of_stock, 402 insufficient_funds "
            "or card_declined, 400 own product, 502 stripe_unavailable (the order stays pending)."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        order = order_place(
            buyer=signed_in_user(request),
            product_id=data["product"],
            quantity=data["quantity"],
            payment_method=data["payment_method"],
            card=data.get("card"),
        )
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailView(APIView):
    @extend_schema(responses={200: OrderSerializer, **errors(401, 404)}, tags=["orders"], summary="One of your orders")
    def get(self, request: Request, order_id: str) -> Response:
        order = selectors.order_of_buyer(buyer=signed_in_user(request), order_id=order_id)
        return Response(OrderSerializer(order).data)


class OrderCancelView(APIView):
    throttle_classes = (PaymentsThrottle,)

    @extend_schema(
        request=None,
        responses={200: OrderSerializer, **errors(401, 404, 409, 429, 502)},
        tags=["orders"],
        summary="Cancel a pending order; its stock comes back",
    )
    def post(self, request: Request, order_id: str) -> Response:
        order = order_cancel(buyer=signed_in_user(request), order_id=order_id)
        return Response(OrderSerializer(order).data)


class MerchantSalesView(generics.ListAPIView):
    serializer_class = SaleSerializer
    permission_classes = (IsMerchant,)

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Order.objects.none()
        query = SalesQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.sales_of_merchant(merchant=signed_in_user(self.request), **query.validated_data)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=OrderStatus.values, description="Only orders in this status."),
            OpenApiParameter(
                "since", OpenApiTypes.DATETIME, description="ISO-8601: only orders created at or after it."
            ),
        ],
        responses={200: SaleSerializer(many=True), **errors(400, 401, 403)},
        tags=["merchant"],
        summary="Orders of your products, newest first, with fee and net",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
