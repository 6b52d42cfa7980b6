"""The catalog API. Public GETs are served from the cache before DRF runs (see ``catalog.cache``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from accounts.permissions import IsMerchant
from accounts.request import signed_in_user
from catalog import selectors, services
from catalog.cache import cached_public_get
from catalog.filters import PublicProductFilter
from catalog.models import Product, ProductCode
from catalog.rendering import public_product, public_rows
from catalog.serializers import (
    CodesAddedSerializer,
    CodesAddSerializer,
    OwnProductSerializer,
    ProductCodeSerializer,
    ProductFileSerializer,
    ProductFileUploadSerializer,
    ProductPatchSerializer,
    ProductSerializer,
    ProductWriteSerializer,
)
from config.schema import errors
from config.throttling import UserThrottle

_READ_METHODS = ("GET", "HEAD", "OPTIONS")


class _PublicReadOwnerWrite(GenericAPIView):
    """Reads are public and identical for every caller; writes need the owning merchant.

    Reads ignore credentials altogether, so an anonymous and a logged-in reader
    get the same (cacheable) body, from the cache or not.
    """

    # Builds a GET's 200 body straight from the database on a cache miss (None: run the view).
    build_body: Callable[..., bytes | None] | None = None

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return cached_public_get(super().as_view(**initkwargs), build=cls.build_body)

    def _reading(self) -> bool:
        request = getattr(self, "request", None)  # None while the OpenAPI schema is generated
        return request is not None and request.method in _READ_METHODS

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [] if self._reading() else super().get_authenticators()

    def get_permissions(self) -> Sequence[BasePermission]:
        return [AllowAny()] if self._reading() else [IsMerchant()]

    def get_throttles(self) -> list[BaseThrottle]:
        return [] if self._reading() else [UserThrottle()]


class ProductCollectionView(_PublicReadOwnerWrite):
    """The public catalog (anyone, cached) and product creation (merchants)."""

    queryset = Product.objects.none()
    serializer_class = ProductSerializer
    filterset_class = PublicProductFilter

    @extend_schema(
        operation_id="products_list",
        responses={200: ProductSerializer(many=True), **errors(400, 404)},
        tags=["products"],
        summary="Public catalog: active products, newest first",
        auth=[],
    )
    def get(self, request: Request) -> Response:
        products = self.filter_queryset(selectors.products_public())
        page = self.paginate_queryset(public_rows(products))
        return self.get_paginated_response([public_product(row) for row in page or ()])

    @extend_schema(
        request=ProductWriteSerializer,
        responses={201: OwnProductSerializer, **errors(400, 401, 403, 429)},
        tags=["products"],
        summary="Create a product (merchants)",
    )
    def post(self, request: Request) -> Response:
        serializer = ProductWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_create(merchant=signed_in_user(request), **serializer.validated_data)
        return Response(OwnProductSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailView(_PublicReadOwnerWrite):
    """One public product (anyone, cached); the owning merchant updates or soft-deletes it."""

    build_body = staticmethod(lambda request, product_id: selectors.product_public_body(product_id))

    serializer_class = ProductSerializer

    @extend_schema(
        responses={200: ProductSerializer, **errors(404)},
        tags=["products"],
        summary="One public product",
        auth=[],
    )
    def get(self, request: Request, product_id: str) -> Response:
        return Response(selectors.product_public_data(product_id))

    @extend_schema(
        request=ProductPatchSerializer,
        responses={200: OwnProductSerializer, **errors(400, 401, 403, 404, 409, 429)},
        tags=["products"],
        summary="Update an own product (only the fields sent)",
    )
    def patch(self, request: Request, product_id: str) -> Response:
        serializer = ProductPatchSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        product = services.product_update(
            merchant=signed_in_user(request),
            product_id=product_id,
            **serializer.validated_data,
        )
        return Response(OwnProductSerializer(product).data)

    @extend_schema(
        responses={204: None, **errors(401, 403, 404, 429)},
        tags=["products"],
        summary="Delete an own product (soft: hidden, kept for orders)",
    )
    def delete(self, request: Request, product_id: str) -> Response:
        services.product_delete(merchant=signed_in_user(request), product_id=product_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MerchantProductListView(GenericAPIView):
    permission_classes = (IsMerchant,)
    queryset = Product.objects.none()
    serializer_class = OwnProductSerializer

    @extend_schema(
        responses={200: OwnProductSerializer(many=True), **errors(400, 401, 403)},
        tags=["products"],
        summary="The merchant's own products, deleted ones included",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("cursor", str)],
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.products_of_merchant(signed_in_user(request)))
        return self.get_paginated_response(OwnProductSerializer(page, many=True).data)


class MerchantProductDetailView(GenericAPIView):
    permission_classes = (IsMerchant,)
    serializer_class = OwnProductSerializer

    @extend_schema(
        responses={200: OwnProductSerializer, **errors(401, 403, 404)},
        tags=["products"],
        summary="One own product, with its fulfillment (also when deleted)",
    )
    def get(self, request: Request, product_id: str) -> Response:
        product = selectors.product_of_merchant_get(signed_in_user(request), product_id)
        return Response(OwnProductSerializer(product).data)


class ProductCodesView(GenericAPIView):
    """The owning merchant's code pool of a product: add codes, list them with their status and order."""

    permission_classes = (IsMerchant,)
    queryset = ProductCode.objects.none()
    serializer_class = ProductCodeSerializer

    @extend_schema(
        request=CodesAddSerializer,
        responses={201: CodesAddedSerializer, **errors(400, 401, 403, 404, 429)},
        tags=["products"],
        summary="Add unique codes to an own code-pool product (its stock becomes the unsold codes)",
    )
    def post(self, request: Request, product_id: str) -> Response:
        serializer = CodesAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        codes = serializer.validated_data["codes"]
        stock = services.product_codes_add(merchant=signed_in_user(request), product_id=product_id, codes=codes)
        return Response({"added": len(codes), "stock": stock}, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: ProductCodeSerializer(many=True), **errors(401, 403, 404)},
        tags=["products"],
        summary="The codes of an own product, with each one's status and the order holding it",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("cursor", str)],
    )
    def get(self, request: Request, product_id: str) -> Response:
        codes = selectors.codes_of_product(merchant=signed_in_user(request), product_id=product_id)
        page = self.paginate_queryset(codes.order_by("-id"))
        return self.get_paginated_response(ProductCodeSerializer(page, many=True).data)


class ProductFileView(GenericAPIView):
    """The one file of an own ``file`` product (multipart field ``file``)."""

    permission_classes = (IsMerchant,)
    parser_classes = (MultiPartParser,)
    serializer_class = ProductFileSerializer

    @extend_schema(
        request={"multipart/form-data": ProductFileUploadSerializer},
        responses={200: ProductFileSerializer, **errors(400, 401, 403, 404, 413, 429)},
        tags=["products"],
        summary="Upload (or replace) the file an own file product sells",
    )
    def put(self, request: Request, product_id: str) -> Response:
        serializer = ProductFileUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product_file = services.product_file_put(
            merchant=signed_in_user(request), product_id=product_id, upload=serializer.validated_data["file"]
        )
        return Response(ProductFileSerializer(product_file).data)
