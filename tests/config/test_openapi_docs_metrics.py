"""The OpenAPI document, the interactive docs and the Prometheus metrics are served."""

from __future__ import annotations

import json

import pytest
import yaml
from drf_spectacular.validation import validate_schema
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db


def test_schema_when_json_requested_then_valid_openapi_3_with_bearer_auth(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    token = schema["paths"]["/api/v1/auth/token"]["post"]
    assert {"200", "401", "429"} <= set(token["responses"])


def test_schema_default_is_yaml_and_matches_the_json(api):
    yaml_response = api.get("/api/schema/")
    json_response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert yaml_response.status_code == 200
    assert yaml_response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(yaml_response.content) == json.loads(json_response.content)


def test_docs_then_html_page_pointing_at_the_schema(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger" in page.lower()
    assert "/api/schema/" in page


def test_metrics_then_prometheus_text_counting_requests(api, settings):
    settings.METRICS_TOKEN = "metrics-token"
    api.get("/healthz")
    api.get("/api/v1/no-such-thing")

    response = api.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
    by_status = families["django_http_responses_total_by_status"]
    counted = {sample.labels["status"] for sample in by_status.samples if sample.name.endswith("_total")}
    assert {"200", "404"} <= counted
    assert "django_http_requests_latency_seconds_by_view_method" in families
