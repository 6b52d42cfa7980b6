"""With DEBUG off and no collected static files, start-up and /readyz name the problem and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture
def production_static(settings: Any, tmp_path: Path) -> Path:
    settings.DEBUG = False
    settings.STORAGES = MANIFEST_STORAGE
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    return settings.STATIC_ROOT


def test_system_check_when_static_not_collected_then_error_names_collectstatic(production_static: Path) -> None:
    errors = [e for e in checks.run_checks(tags=[checks.Tags.staticfiles]) if e.id == "config.E010"]
    assert len(errors) == 1
    assert "collectstatic --noinput" in errors[0].msg and "staticfiles.json" in errors[0].msg


def test_readyz_when_static_not_collected_then_503_names_problem_and_fix(production_static: Path) -> None:
    response = Client().get("/readyz", secure=True)
    assert response.status_code == 503
    body = response.json()
    assert "static" in body["failing"]
    assert "python manage.py collectstatic --noinput" in body["problems"]["static"]


def test_static_check_when_collected_then_no_error_and_readyz_static_ok(production_static: Path) -> None:
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (production_static / "staticfiles.json").exists()
    assert not [e for e in checks.run_checks(tags=[checks.Tags.staticfiles]) if e.id == "config.E010"]
    assert Client().get("/readyz", secure=True).json()["checks"]["static"] == "ok"


def test_static_check_when_debug_then_silent(settings: Any) -> None:
    settings.DEBUG = True
    assert not [e for e in checks.run_checks(tags=[checks.Tags.staticfiles]) if e.id == "config.E010"]
