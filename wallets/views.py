from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.request import signed_in_user
from config.schema import errors
from config.throttling import PaymentsThrottle, WithdrawalsThrottle, WriteThrottledMixin
from wallets import selectors
from wallets.deposits import deposit_create
from wallets.models import Posting, Withdrawal
from wallets.serializers import (
    DepositCreateSerializer,
    DepositSerializer,
    TransactionSerializer,
    WalletQuerySerializer,
    WalletSerializer,
    WithdrawalCreateSerializer,
    WithdrawalSerializer,
)
from wallets.withdrawals import withdrawal_request


class WalletView(APIView):
    """The caller's wallet: ``balance`` can be spent now, ``withdrawable`` withdrawn now, ``pending`` is held
    by withdrawals and disputes, ``incoming`` is income not yet available; ``?at=`` as it was then."""

    @extend_schema(
        parameters=[WalletQuerySerializer],
        responses={200: WalletSerializer, **errors(400, 401)},
        tags=["wallet"],
        summary="Balance, withdrawable, pending and incoming",
    )
    def get(self, request: Request) -> Response:
        query = WalletQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        summary = selectors.wallet_summary(signed_in_user(request), at=query.validated_data.get("at"))
        return Response(WalletSerializer(summary).data)


class TransactionListView(generics.ListAPIView):
    """Every posting on the caller's wallet, newest first, with the balance before and after it."""

    serializer_class = TransactionSerializer

    def get_queryset(self) -> QuerySet[Posting]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Posting.objects.none()
        return selectors.wallet_postings(signed_in_user(self.request))

    @extend_schema(
        responses={200: TransactionSerializer(many=True), **errors(400, 401, 404)},
        tags=["wallet"],
        summary="Wallet postings, newest first, with the balance before and after each",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class DepositCreateView(WriteThrottledMixin, APIView):
    """A top-up paid by a saved card; the wallet is credited once (and only once) the payment succeeds."""

    write_throttle_classes = (PaymentsThrottle,)

    @extend_schema(
        request=DepositCreateSerializer,
        responses={201: DepositSerializer, **errors(400, 401, 402, 409, 422, 429, 502)},
        tags=["wallet"],
        summary="Top up the wallet from a saved card",
    )
    def post(self, request: Request) -> Response:
        serializer = DepositCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deposit = deposit_create(
            user=signed_in_user(request),
            amount=serializer.validated_data["amount"],
            payment_method_id=serializer.validated_data["payment_method"],
        )
        return Response(DepositSerializer(deposit).data, status=status.HTTP_201_CREATED)


class DepositDetailView(APIView):
    """One of the caller's top-ups; anyone else's is 404."""

    @extend_schema(responses={200: DepositSerializer, **errors(401, 404)}, tags=["wallet"], summary="A top-up")
    def get(self, request: Request, deposit_id: str) -> Response:
        deposit = selectors.deposit_get(user=signed_in_user(request), deposit_id=deposit_id)
        return Response(DepositSerializer(deposit).data)


class WithdrawalListCreateView(WriteThrottledMixin, generics.ListAPIView):
    """Payouts: the amount is held at once; staff approve (``paid``) or reject (``rejected``, funds released)."""

    serializer_class = WithdrawalSerializer
    write_throttle_classes = (WithdrawalsThrottle,)

    def get_queryset(self) -> QuerySet[Withdrawal]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Withdrawal.objects.none()
        return selectors.withdrawals_of(signed_in_user(self.request))

    @extend_schema(
        responses={200: WithdrawalSerializer(many=True), **errors(400, 401, 404)},
        tags=["wallet"],
        summary="Own withdrawals, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=WithdrawalCreateSerializer,
        responses={201: WithdrawalSerializer, **errors(400, 401, 402, 409, 422, 429)},
        tags=["wallet"],
        summary="Ask for a payout; the amount is held at once",
    )
    def post(self, request: Request) -> Response:
        serializer = WithdrawalCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        withdrawal = withdrawal_request(
            user=signed_in_user(request),
            amount=serializer.validated_data["amount"],
        )
        return Response(WithdrawalSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class WithdrawalDetailView(APIView):
    """One of the caller's withdrawals; anyone else's is 404."""

    @extend_schema(responses={200: WithdrawalSerializer, **errors(401, 404)}, tags=["wallet"], summary="A withdrawal")
    def get(self, request: Request, withdrawal_id: str) -> Response:
        withdrawal = selectors.withdrawal_get(user=signed_in_user(request), withdrawal_id=withdrawal_id)
        return Response(WithdrawalSerializer(withdrawal).data)
