"""Domain errors of the catalog app."""

from __future__ import annotations

from config.errors import NotFound, PermissionDeniedError


class ProductNotFound(NotFound):
    default_message = "No such product."


class NotAMerchant(PermissionDeniedError):
    default_message = "Only merchants can manage products."
