from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenObtainSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Role, User
from accounts.services import staff_otp_check, token_rotate


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "role", "first_name", "last_name", "created_at")
        read_only_fields = ("id", "email", "role", "created_at")


class UserUpdateSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=150, allow_blank=True, required=False)
    last_name = serializers.CharField(max_length=150, allow_blank=True, required=False)


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    role = serializers.ChoiceField(choices=Role.choices)
    first_name = serializers.CharField(max_length=150, allow_blank=True, required=False, default="")
    last_name = serializers.CharField(max_length=150, allow_blank=True, required=False, default="")


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisterResponseSerializer(TokenPairSerializer):
    user = UserSerializer()


class EmailTokenObtainSerializer(TokenObtainPairSerializer):
    """Logs in by email, matched case-insensitively; staff add ``otp`` (TOTP) when ``DEBUG`` is off."""

    otp = serializers.CharField(max_length=16, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        attrs[self.username_field] = str(attrs.get(self.username_field, "")).strip().lower()
        # Authenticate (sets self.user), check the second factor, and only then mint the pair.
        TokenObtainSerializer.validate(self, attrs)
        user: User = self.user  # type: ignore[assignment]  # set by the authentication above, or it raised
        staff_otp_check(user=user, token=attrs.get("otp"))
        refresh = RefreshToken.for_user(user)
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


class RotatingRefreshSerializer(TokenRefreshSerializer):
    """Each refresh token works once: a second use (a stolen copy) answers 401."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        return token_rotate(refresh=attrs["refresh"])


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)
