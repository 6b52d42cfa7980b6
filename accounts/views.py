from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import services
from accounts.request import signed_in_user
from accounts.serializers import (
    EmailTokenObtainSerializer,
    LogoutSerializer,
    PasswordChangeSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    RotatingRefreshSerializer,
    TokenPairSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from config.schema import errors
from config.throttling import AuthEmailThrottle, AuthIpThrottle, TokenRefreshThrottle


class RegisterView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_classes = (AuthIpThrottle, AuthEmailThrottle)

    @extend_schema(
        request=RegisterSerializer,
        responses={201: RegisterResponseSerializer, **errors(400, 429)},
        tags=["auth"],
        summary="Create a customer or merchant account",
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        body = {"user": UserSerializer(user).data, **services.tokens_for(user)}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(TokenObtainPairView):
    serializer_class = EmailTokenObtainSerializer
    authentication_classes = ()
    throttle_classes = (AuthIpThrottle, AuthEmailThrottle)

    @extend_schema(responses={200: TokenPairSerializer, **errors(400, 401, 429)}, tags=["auth"], summary="Log in")
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)


class TokenRefresh(TokenRefreshView):
    serializer_class = RotatingRefreshSerializer
    authentication_classes = ()
    throttle_classes = (TokenRefreshThrottle,)

    @extend_schema(
        responses={200: TokenPairSerializer, **errors(400, 401, 429)},
        tags=["auth"],
        summary="Swap a refresh token for a new pair; the old refresh token stops working",
    )
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)


class LogoutView(APIView):
    @extend_schema(request=LogoutSerializer, responses={204: None, **errors(400, 401)}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_logout(user=signed_in_user(request), refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer, **errors(401)}, tags=["me"])
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(signed_in_user(request)).data)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserSerializer, **errors(400, 401)}, tags=["me"])
    def patch(self, request: Request) -> Response:
        serializer = UserUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=signed_in_user(request), **serializer.validated_data)
        return Response(UserSerializer(user).data)


class PasswordChangeView(APIView):
    throttle_classes = (AuthIpThrottle,)

    @extend_schema(request=PasswordChangeSerializer, responses={204: None, **errors(400, 401, 429)}, tags=["me"])
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_change_password(user=signed_in_user(request), **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
