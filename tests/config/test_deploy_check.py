"""`manage.py check --deploy` passes with production environment values, and fails without them."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _production(**overrides: str) -> dict[str, str]:
    values = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "payments.example.com",
        "DATABASE_URL": "postgres://payments:pw@db.internal:5432/payments",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
    }
    values.update(overrides)
    return values


def test_check_deploy_when_production_values_and_static_collected_then_no_warning(tmp_path: Path) -> None:
    # As the image is built: collectstatic with DEBUG off (config.E010 does not block it), then the start-up check.
    environment = _production(STATIC_ROOT=str(tmp_path / "static"))
    collected = _manage("collectstatic", "--noinput", "-v", "0", **environment)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()

    result = _manage("check", "--deploy", "--fail-level", "WARNING", **environment)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_when_static_not_collected_then_only_e010_naming_collectstatic(tmp_path: Path) -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **_production(STATIC_ROOT=str(tmp_path / "none")))

    assert result.returncode != 0
    assert "config.E010" in result.stderr and "python manage.py collectstatic --noinput" in result.stderr
    # The only error (warnings are the other test's concern): the system check ids marked E (error) or C (critical).
    assert re.findall(r"\((\S+\.[EC]\d+)\)", result.stderr) == ["config.E010"], result.stderr


def test_check_deploy_when_secret_key_weak_then_fails():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **_production(SECRET_KEY="short"))

    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_production_when_secret_key_missing_then_refuses_to_start():
    environment = _production()
    del environment["SECRET_KEY"]

    result = _manage("check", **environment)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_when_allowed_hosts_missing_then_refuses_to_start():
    environment = _production()
    del environment["ALLOWED_HOSTS"]

    result = _manage("check", **environment)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr
