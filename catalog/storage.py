"""Where product files live: the ``product_files`` storage of ``settings.STORAGES`` (local ``MEDIA_ROOT`` by
default, S3 or any Django storage by configuration), and how a download reaches one without the web worker.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty
from django.utils.http import content_disposition_header

PRODUCT_FILES = "product_files"
# How long a signed URL handed to a downloader stays good: only to start the transfer (the storage checks
# the expiry when the request arrives, not while the body flows), so a leaked one is soon worthless.
SIGNED_URL_SECONDS = 60


class _ProductFileStorage(LazyObject):
    """The configured storage, looked up at first use (and again after a test changes ``STORAGES``). The
    field's type check resolves it when the models load, so a backend that cannot load (S3 without boto3)
    stops the process at start, never at a buyer's download."""

    _wrapped: Any

    def _setup(self) -> None:
        self._wrapped = storages[PRODUCT_FILES]

    def forget_backend(self) -> None:
        self._wrapped = empty


product_files = _ProductFileStorage()


def product_file_storage() -> Storage:
    """``ProductFile.file``'s storage (a callable, so migrations name this function, never a backend)."""
    return cast(Storage, product_files)


@receiver(setting_changed)
def _storages_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "STORAGES":
        product_files.forget_backend()


def signs_urls(storage: Storage) -> bool:
    """Whether ``storage.url(name, expire=…)`` answers a URL that only works for that long.

    True for django-storages' S3 backends with query-string auth (the default), unless a custom domain
    without a CloudFront signer makes their URLs plain; never for the local file system, whose URLs are
    plain paths under ``MEDIA_URL`` (which the platform does not serve).
    """
    if not getattr(storage, "querystring_auth", False):
        return False
    if getattr(storage, "custom_domain", None) and not getattr(storage, "cloudfront_signer", None):
        return False
    return "expire" in inspect.signature(storage.url).parameters


def signed_download_url(storage: Storage, name: str, *, filename: str, content_type: str) -> str | None:
    """A short-lived signed URL that fetches ``name`` as an attachment called ``filename``; None when the
    storage cannot sign one (then the file is streamed through the platform)."""
    if not signs_urls(storage):
        return None
    parameters = {
        "ResponseContentDisposition": content_disposition_header(True, filename),
        "ResponseContentType": content_type,
        "ResponseCacheControl": "private, no-store",
    }
    url: str = storage.url(name, parameters=parameters, expire=SIGNED_URL_SECONDS)  # type: ignore[call-arg]
    return url
