"""The staff API for withdrawals: the queue awaiting a decision, and Finance's approve/reject.

Thin: the decisions are ``wallets.withdrawals``' services, the same ones the admin and the command call.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.request import signed_in_user
from accounts.roles import Perm, staff_require
from config.errors import ValidationFailed
from config.pagination import CursorPagination
from config.schema import errors
from wallets import selectors
from wallets.models import WITHDRAWAL_OPEN_STATUSES, Withdrawal
from wallets.serializers import StaffWithdrawalSerializer, WithdrawalDecisionSerializer
from wallets.withdrawals import withdrawal_approve, withdrawal_reject


class OldestFirst(CursorPagination):
    ordering = "id"


class StaffWithdrawalListView(generics.ListAPIView):
    """Withdrawals awaiting a decision, oldest first (Finance staff)."""

    serializer_class = StaffWithdrawalSerializer
    pagination_class = OldestFirst

    def get_queryset(self) -> QuerySet[Withdrawal]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Withdrawal.objects.none()
        staff_require(signed_in_user(self.request), Perm.DECIDE_WITHDRAWALS)
        status = self.request.query_params.get("status") or None
        if status is not None and status not in WITHDRAWAL_OPEN_STATUSES:
            allowed = ", ".join(WITHDRAWAL_OPEN_STATUSES)
            raise ValidationFailed(f"status must be one of {allowed}.", param="status")
        return selectors.withdrawals_pending(status)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=[str(s) for s in WITHDRAWAL_OPEN_STATUSES])],
        responses={200: StaffWithdrawalSerializer(many=True), **errors(400, 401, 403)},
        tags=["staff"],
        summary="Withdrawals awaiting a decision, oldest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class StaffWithdrawalDecisionView(APIView):
    """Approve (pay, or the first of two approvals at the four-eyes threshold) or reject a withdrawal."""

    approve = True

    @extend_schema(
        request=WithdrawalDecisionSerializer,
        responses={200: StaffWithdrawalSerializer, **errors(400, 401, 403, 404, 409)},
        tags=["staff"],
        summary="Decide a withdrawal",
    )
    def post(self, request: Request, withdrawal_id: str) -> Response:
        serializer = WithdrawalDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decide = withdrawal_approve if self.approve else withdrawal_reject
        withdrawal = decide(
            withdrawal_id=withdrawal_id,
            actor=signed_in_user(request),
            reason=serializer.validated_data["reason"],
        )
        withdrawal = Withdrawal.objects.select_related("user").get(pk=withdrawal.pk)
        return Response(StaffWithdrawalSerializer(withdrawal).data)
