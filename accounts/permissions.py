"""Role permissions for the API. Objects that are not yours answer 404, not 403."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import Role


class IsCustomer(BasePermission):
    message = "Only customers can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.role == Role.CUSTOMER)


class IsMerchant(BasePermission):
    message = "Only merchants can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.role == Role.MERCHANT)


class IsMerchantOrStaff(BasePermission):
    message = "Only merchants and staff can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.role == Role.MERCHANT or user.is_staff))
