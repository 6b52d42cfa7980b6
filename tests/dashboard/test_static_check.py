"""With DEBUG off and no collected static files, start-up and /readyz name the problem and the fix."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client

from config.health import STATIC_COLLECTED_TAG, static_files_log_at_start

pytestmark = pytest.mark.django_db

MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.static_storage.LenientManifestStaticFilesStorage"},
}


@pytest.fixture
def production_static(settings: Any, tmp_path: Path) -> Path:
    settings.DEBUG = False
    settings.STORAGES = MANIFEST_STORAGE
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    return settings.STATIC_ROOT


def test_system_check_when_static_not_collected_then_error_names_collectstatic(production_static: Path) -> None:
    errors = [e for e in checks.run_checks(tags=[STATIC_COLLECTED_TAG]) if e.id == "config.E010"]
    assert len(errors) == 1
    assert "collectstatic --noinput" in errors[0].msg and "staticfiles.json" in errors[0].msg


def test_readyz_when_static_not_collected_then_503_names_problem_and_fix(production_static: Path) -> None:
    response = Client().get("/readyz", secure=True)
    assert response.status_code == 503
    body = response.json()
    assert "static" in body["failing"]
    assert "python manage.py collectstatic --noinput" in body["problems"]["static"]


def test_static_check_when_collected_then_no_error_readyz_static_ok_and_hashed_names(
    production_static: Path, caplog: pytest.LogCaptureFixture
) -> None:
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (production_static / "staticfiles.json").exists()
    assert not [e for e in checks.run_checks(tags=[STATIC_COLLECTED_TAG]) if e.id == "config.E010"]
    assert Client().get("/readyz", secure=True).json()["checks"]["static"] == "ok"
    page = Client().get("/admin/login/", secure=True).content.decode()
    assert re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css", page), page
    with caplog.at_level(logging.ERROR, logger="config.health"):
        static_files_log_at_start()
    assert not [r for r in caplog.records if "config.E010" in r.getMessage()]


def test_static_check_when_debug_then_silent(settings: Any) -> None:
    settings.DEBUG = True
    assert not [e for e in checks.run_checks(tags=[STATIC_COLLECTED_TAG]) if e.id == "config.E010"]


def test_collectstatic_checks_when_not_collected_then_e010_not_among_them(production_static: Path) -> None:
    # collectstatic runs the checks tagged staticfiles: E010 there would block the command that fixes it.
    assert not [e for e in checks.run_checks(tags=[checks.Tags.staticfiles]) if e.id == "config.E010"]
    assert [e for e in checks.run_checks() if e.id == "config.E010"]


def test_page_when_static_not_collected_then_renders_with_plain_names(production_static: Path) -> None:
    response = Client().get("/admin/login/", secure=True)
    assert response.status_code == 200
    assert "/static/admin/css/base.css" in response.content.decode()


def test_wsgi_start_when_static_not_collected_then_logs_problem_and_fix(
    production_static: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="config.health"):
        static_files_log_at_start()
    assert any("config.E010" in r.getMessage() and "collectstatic --noinput" in r.getMessage() for r in caplog.records)
