"""Liveness and readiness probes: /readyz names the part that fails."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError, connection

from config.celery import app as celery_app
from config.embedded import celery_broker_url

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_then_200_ok_without_touching_the_database(api, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_all_parts_up_then_200_with_each_check(api):
    response = api.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "static": "ok"}}


def test_readyz_when_database_fails_then_503_naming_database(api):
    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection to server at 127.0.0.1 refused")

    with connection.execute_wrapper(refuse):
        response = api.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"] == {"database": "failing", "cache": "ok", "static": "ok"}
    assert "refused" not in response.content.decode()


def test_readyz_when_cache_unreachable_then_503_naming_cache(api, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }

    response = api.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]
    assert response.json()["checks"]["database"] == "ok"


@pytest.fixture
def broker(settings):
    """A real broker in use (tasks not eager); yields a setter for its URL."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    previous = celery_app.conf.broker_url

    def use(url: str) -> None:
        celery_app.conf.broker_url = url

    yield use
    celery_app.conf.broker_url = previous


def test_readyz_when_broker_configured_and_up_then_checked_and_200(api, broker, settings):
    broker(celery_broker_url(settings.REDIS_URL))

    response = api.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "static": "ok", "broker": "ok"}


def test_readyz_when_broker_unreachable_then_503_naming_broker_quickly(api, broker):
    broker(UNREACHABLE_REDIS)

    started = time.monotonic()
    response = api.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    assert time.monotonic() - started < 1.5


def test_probes_when_https_redirect_on_then_still_answer_plain_http(api, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200
    assert api.get("/api/v1/products").status_code == 301
