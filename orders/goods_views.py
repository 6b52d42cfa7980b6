"""The goods API: the buyer's library and fresh download links, the download itself, the licence check.

A download is served by whoever holds its link (the token is the secret): streamed from local storage, never
read into memory, or redirected to a signed URL good for a minute where the storage makes one (S3).
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponseBase, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.request import signed_in_user
from catalog.storage import signed_download_url
from config.schema import errors
from config.throttling import ScaledRateThrottle
from orders.goods_selectors import goods_of_buyer
from orders.goods_serializers import LibraryItemSerializer, LicenseCheckSerializer
from orders.models import Goods
from orders.services.goods import download_start, goods_link_issue, license_check


class LicenseCheckThrottle(ScaledRateThrottle):
    scope = "licenses"


class LibraryView(generics.ListAPIView):
    """Everything the buyer owns, newest first."""

    serializer_class = LibraryItemSerializer
    permission_classes = (IsAuthenticated,)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Goods.objects.none()
        return goods_of_buyer(buyer=signed_in_user(self.request))

    @extend_schema(
        responses={200: LibraryItemSerializer(many=True), **errors(400, 401)},
        tags=["goods"],
        summary="The buyer's library: every goods item of their paid orders",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("cursor", str)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class LibraryLinkView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        request=None,
        responses={201: LibraryItemSerializer, **errors(401, 404, 410)},
        tags=["goods"],
        summary="A fresh download link for an own download with downloads left (the previous link stops)",
    )
    def post(self, request: Request, goods_id: str) -> Response:
        goods, token = goods_link_issue(buyer=signed_in_user(request), goods_id=goods_id)
        return Response(LibraryItemSerializer(goods, context={"token": token}).data, status=status.HTTP_201_CREATED)


class DownloadView(APIView):
    """The file behind a download link: each GET that starts counts one download."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="A remote storage's signed URL for the file, good for 60 s"),
            **errors(404, 410),
        },
        tags=["goods"],
        summary="Download the file (the token in the link is the credential)",
        auth=[],
    )
    def get(self, request: Request, token: str) -> HttpResponseBase:
        started = download_start(token=token)
        stored = started.file.file
        signed = signed_download_url(
            stored.storage, stored.name or "", filename=started.file.name, content_type=started.file.content_type
        )
        if signed is not None:  # a remote backend serves the bytes itself; this worker only counts
            redirect = HttpResponseRedirect(signed)
            redirect["Cache-Control"] = "private, no-store"
            redirect["Referrer-Policy"] = "no-referrer"
            return redirect
        handle = stored.open("rb")  # the storage's file, read in blocks by the server
        response = FileResponse(
            handle, as_attachment=True, filename=started.file.name, content_type=started.file.content_type
        )
        response["Content-Length"] = str(started.file.size)
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class LicenseCheckView(APIView):
    """Lets a merchant's software check a key: validity, status and product only."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (LicenseCheckThrottle,)

    @extend_schema(
        responses={200: LicenseCheckSerializer, **errors(404, 429)}, tags=["goods"], summary="Check a key", auth=[]
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(license_check(key=key))
