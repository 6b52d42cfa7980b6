"""The staff API for refunds awaiting a second approval: Finance approves (it runs) or rejects (``canceled``).

Thin: the decisions are ``payments.services.refund_approvals``' services, the same ones the admin calls.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.request import signed_in_user
from config.schema import errors
from payments.models import Refund
from payments.serializers import RefundSerializer
from payments.services.refund_approvals import refund_approve, refund_reject


class RefundDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, help_text="Why: every money decision records one.")


class StaffRefundDecisionView(APIView):
    """Approve or reject a staff refund in ``pending_approval``."""

    approve = True

    @extend_schema(
        request=RefundDecisionSerializer,
        responses={200: RefundSerializer, **errors(400, 401, 402, 403, 404, 409, 502)},
        tags=["staff"],
        summary="Decide a refund awaiting approval",
    )
    def post(self, request: Request, refund_id: str) -> Response:
        serializer = RefundDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decide = refund_approve if self.approve else refund_reject
        refund = decide(
            refund_id=refund_id,
            actor=signed_in_user(request),
            reason=serializer.validated_data["reason"],
        )
        refund = Refund.objects.select_related("payment__order").get(pk=refund.pk)
        return Response(RefundSerializer(refund).data)
