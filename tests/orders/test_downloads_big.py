"""A large product file: uploaded past the API's small-body limit, downloaded streamed with little memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path
from typing import Any, cast

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from catalog.services import product_create, product_file_put
from tests.orders.conftest import buy, fund

pytestmark = pytest.mark.django_db

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_download_when_the_file_is_50_mb_then_memory_grows_far_less_than_the_file(
    tmp_path: Path, merchant: Any, customer: Any, customer_api: APIClient
) -> None:
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(50):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    product = product_create(merchant=merchant, name="Big", price=1000, delivery="file", download_limit=1)
    with source.open("rb") as handle:
        upload = UploadedFile(handle, name="big.bin", content_type="application/octet-stream", size=FIFTY_MB)
        stored = product_file_put(merchant=merchant, product_id=product.pk, upload=upload)
    assert (stored.size, stored.sha256) == (FIFTY_MB, digest.hexdigest())
    fund(customer, 10_000)
    url = buy(customer_api, product.pk).json()["goods"][0]["url"].split("127.0.0.1:8000", 1)[1]

    tracemalloc.start()
    try:
        response = APIClient().get(url)
        assert response.status_code == 200
        assert response["Content-Length"] == str(FIFTY_MB)
        received = hashlib.sha256()
        size = 0
        for chunk in cast(StreamingHttpResponse, response):
            received.update(chunk)
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (size, received.hexdigest()) == (FIFTY_MB, digest.hexdigest())
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while streaming a {FIFTY_MB}-byte file"
    again = APIClient().get(url)  # its one download is used
    assert (again.status_code, again.json()["error"]["code"]) == (410, "download_limit_reached")


def test_file_put_when_above_the_small_body_limit_then_the_api_takes_it(merchant_api: APIClient, merchant: Any) -> None:
    product = product_create(merchant=merchant, name="Medium", price=1000, delivery="file")
    content = os.urandom(3 * 1024 * 1024)  # far above DATA_UPLOAD_MAX_MEMORY_SIZE
    upload = SimpleUploadedFile("medium.zip", content, "application/zip")

    response = merchant_api.put(f"/api/v1/products/{product.pk}/file", {"file": upload}, format="multipart")

    assert response.status_code == 200, response.content[:300]
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()


def test_file_put_when_above_max_upload_bytes_then_400_param_file(
    merchant_api: APIClient, merchant: Any, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    product = product_create(merchant=merchant, name="Small", price=1000, delivery="file")
    upload = SimpleUploadedFile("too-big.bin", b"x" * 2000)

    response = merchant_api.put(f"/api/v1/products/{product.pk}/file", {"file": upload}, format="multipart")

    assert (response.status_code, response.json()["error"]["param"]) == (400, "file")
