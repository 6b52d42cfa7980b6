"""Product files in the configured storage (STORAGES["product_files"], chosen by PRODUCT_FILE_STORAGE):
local MEDIA_ROOT by default and streamed; a storage that signs URLs (S3) gets a redirect to a short-lived one;
a remote backend is selected from the environment without any network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.files.storage import FileSystemStorage, InMemoryStorage, storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from catalog.models import ProductFile
from catalog.services import product_create, product_file_put
from catalog.storage import SIGNED_URL_SECONDS, signs_urls
from orders.models import Goods
from tests.orders.conftest import buy, fund

ROOT = Path(__file__).resolve().parents[2]
SIGNING = "tests.catalog.test_product_file_storage.SigningFileStorage"


class SigningFileStorage(FileSystemStorage):
    """Stands in for a remote backend with S3's url() interface (``parameters``, ``expire``, query-string
    auth): it keeps the bytes on the local disk and answers a URL naming what it was asked to sign."""

    querystring_auth = True
    custom_domain = None

    def url(self, name: str | None, parameters: dict[str, str] | None = None, expire: int | None = None) -> str:
        query = urlencode({**(parameters or {}), "X-Expires": str(expire)})
        return f"https://files.example.test/{name}?{query}"


def _storages_with(product_files: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings

    return {**settings.STORAGES, "product_files": product_files}


def _bought_download(merchant: Any, customer: Any, customer_api: APIClient, content: bytes) -> tuple[str, str]:
    """(the download path, the goods id) of a file product the customer bought."""
    product = product_create(merchant=merchant, name="Guide", price=1000, delivery="file", download_limit=2)
    upload = SimpleUploadedFile("guide.pdf", content, "application/pdf")
    product_file_put(merchant=merchant, product_id=product.pk, upload=upload)
    fund(customer, 10_000)
    goods = buy(customer_api, product.pk).json()["goods"][0]
    return urlsplit(goods["url"]).path, goods["id"]


@pytest.mark.django_db
def test_download_when_local_storage_then_the_file_sits_under_media_root_and_is_streamed(
    merchant: Any, customer: Any, customer_api: APIClient, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    path, _ = _bought_download(merchant, customer, customer_api, b"local bytes")

    stored = ProductFile.objects.get()
    assert type(storages["product_files"]) is FileSystemStorage
    assert Path(stored.file.path).read_bytes() == b"local bytes"
    assert Path(stored.file.path).is_relative_to(tmp_path / "media")
    response = APIClient().get(path)
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    assert b"".join(response.streaming_content) == b"local bytes"
    assert response["Content-Length"] == "11" and "Location" not in response


@pytest.mark.django_db
def test_download_when_storage_signs_urls_then_redirect_to_a_short_lived_url_and_one_download_counted(
    merchant: Any, customer: Any, customer_api: APIClient, settings: Any, tmp_path: Path
) -> None:
    settings.STORAGES = _storages_with({"BACKEND": SIGNING, "OPTIONS": {"location": str(tmp_path / "remote")}})
    path, goods_id = _bought_download(merchant, customer, customer_api, b"remote bytes")
    assert (tmp_path / "remote" / str(ProductFile.objects.get().file.name)).read_bytes() == b"remote bytes"

    response = APIClient().get(path)

    assert response.status_code == 302
    signed = urlsplit(response["Location"])
    query = {key: values[0] for key, values in parse_qs(signed.query).items()}
    assert signed.netloc == "files.example.test" and signed.path.endswith("/guide.pdf")
    assert query["X-Expires"] == str(SIGNED_URL_SECONDS)
    assert query["ResponseContentDisposition"] == 'attachment; filename="guide.pdf"'
    assert query["ResponseContentType"] == "application/pdf"
    assert response["Cache-Control"] == "private, no-store"
    assert Goods.objects.get(pk=goods_id).downloads_left == 1
    assert APIClient().get(path).status_code == 302
    assert APIClient().get(path).json()["error"]["code"] == "download_limit_reached"


@pytest.mark.django_db
def test_download_when_storage_changes_then_the_product_file_follows_it(
    merchant: Any, customer: Any, customer_api: APIClient, settings: Any
) -> None:
    settings.STORAGES = _storages_with({"BACKEND": "django.core.files.storage.InMemoryStorage"})
    path, _ = _bought_download(merchant, customer, customer_api, b"in memory")

    assert isinstance(ProductFile.objects.get().file.storage, InMemoryStorage)
    response = APIClient().get(path)
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    assert b"".join(response.streaming_content) == b"in memory"


def test_signs_urls_when_plain_urls_then_false() -> None:
    assert signs_urls(FileSystemStorage()) is False
    assert signs_urls(InMemoryStorage()) is False
    assert signs_urls(SigningFileStorage()) is True
    on_a_domain = SigningFileStorage()
    on_a_domain.custom_domain = "cdn.example.test"  # type: ignore[assignment]
    assert signs_urls(on_a_domain) is False  # S3 with a custom domain and no CloudFront signer: plain URLs


# --- selection by the environment, in a fresh process (no network) ---------------------------------------


def _run(code: str, *, setup: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PRODUCT_FILE_", "DJANGO_", "AWS_"))}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings", **env)
    start = "import django; django.setup(); " if setup else ""
    return subprocess.run(
        [sys.executable, "-c", f"{start}{code}"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _product_files_settings(**env: str) -> Any:
    code = "import json; from django.conf import settings; print(json.dumps(settings.STORAGES['product_files']))"
    done = _run(code, setup=False, **env)  # the settings only: S3's backend needs boto3 to load
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_settings_when_nothing_set_then_product_files_on_the_local_file_system() -> None:
    assert _product_files_settings() == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_settings_when_s3_then_django_storages_s3_with_bucket_endpoint_and_keys_from_the_environment() -> None:
    got = _product_files_settings(
        PRODUCT_FILE_STORAGE="s3",
        PRODUCT_FILE_S3_BUCKET="goods-files",
        PRODUCT_FILE_S3_ENDPOINT_URL="https://objects.example.test",
        PRODUCT_FILE_S3_REGION="eu-west-1",
        PRODUCT_FILE_S3_PREFIX="products",
        PRODUCT_FILE_S3_ACCESS_KEY_ID="AKIDEXAMPLE",
        PRODUCT_FILE_S3_SECRET_ACCESS_KEY="not-a-real-secret",
    )

    assert got == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "goods-files",
            "endpoint_url": "https://objects.example.test",
            "region_name": "eu-west-1",
            "location": "products",
            "querystring_auth": True,
            "file_overwrite": False,
            "access_key": "AKIDEXAMPLE",
            "secret_key": "not-a-real-secret",
        },
    }
    without_keys = _product_files_settings(PRODUCT_FILE_STORAGE="s3", PRODUCT_FILE_S3_BUCKET="goods-files")
    assert "access_key" not in without_keys["OPTIONS"] and "secret_key" not in without_keys["OPTIONS"]


def test_settings_when_s3_without_a_bucket_or_an_unknown_name_then_refuses_to_start() -> None:
    no_bucket = _run("import config.settings", setup=False, PRODUCT_FILE_STORAGE="s3")
    assert no_bucket.returncode != 0 and "PRODUCT_FILE_S3_BUCKET" in no_bucket.stderr
    unknown = _run("import config.settings", setup=False, PRODUCT_FILE_STORAGE="dropbox")
    assert unknown.returncode != 0 and "PRODUCT_FILE_STORAGE must be local, s3" in unknown.stderr


def test_settings_when_a_storage_class_is_named_then_the_product_file_field_uses_that_class() -> None:
    done = _run(
        "from catalog.models import ProductFile; from django.core.files.storage import storages;"
        "field = ProductFile._meta.get_field('file');"
        "print(type(storages['product_files']).__name__, field.storage.__class__.__name__)",
        PRODUCT_FILE_STORAGE="django.core.files.storage.InMemoryStorage",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["InMemoryStorage", "InMemoryStorage"]


def test_startup_when_the_backend_cannot_be_loaded_then_the_process_refuses_to_start() -> None:
    done = _run("pass", PRODUCT_FILE_STORAGE="storages.backends.nowhere.NoStorage")
    assert done.returncode != 0 and "storages.backends.nowhere" in done.stderr
