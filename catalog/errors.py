"""Domain errors of the catalog app."""

from __future__ import annotations

from config.errors import InvalidStatus, NotFound, PermissionDeniedError


class ProductNotFound(NotFound):
    default_message = "No such product."


class NotAMerchant(PermissionDeniedError):
    default_message = "Only merchants can manage products."


class StockChanged(InvalidStatus):
    """409 ``invalid_status`` (param ``stock``): the stock a change was based on is no longer the product's."""

    default_message = (
        "The stock changed since this edit was based on it (units were sold or restocked): reload and retry."
    )
