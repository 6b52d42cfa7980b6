"""Domain errors of the orders app (contract codes come from config.errors)."""

from __future__ import annotations

from config.errors import DomainError, InvalidStatus, NotFound, OutOfStock, PermissionDeniedError, ValidationFailed


class OrderNotFound(NotFound):
    default_message = "No such order."


class ProductNotAvailable(NotFound):
    default_message = "No such product, or it is not for sale."


class ProductOutOfStock(OutOfStock):
    default_message = "The product does not have enough stock left."


class OwnProduct(ValidationFailed):
    default_message = "You cannot buy your own product."


class OnlyCustomersBuy(PermissionDeniedError):
    default_message = "Only customers can place orders."


class OrderNotPending(InvalidStatus):
    default_message = "Only a pending order can be canceled."


class WebhookUrlRefused(ValidationFailed):
    default_message = "The webhook URL is not allowed."


class WebhookEndpointNotFound(NotFound):
    default_message = "No such webhook endpoint."


class TooManyWebhookEndpoints(ValidationFailed):
    default_message = "A merchant can register at most 10 webhook endpoints."


class GoodsGone(DomainError):
    """A download link or goods item that no longer serves (410)."""

    status = 410


class DownloadExpired(GoodsGone):
    code = "download_expired"
    default_message = "This download link has expired; get a fresh one from your library."


class DownloadLimitReached(GoodsGone):
    code = "download_limit_reached"
    default_message = "This item has no downloads left."


class GoodsRevoked(GoodsGone):
    code = "goods_revoked"
    default_message = "This item was revoked (its order was refunded or disputed)."
