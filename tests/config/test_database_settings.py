"""DATABASE_POOL and DATABASE_PREPARED_STATEMENTS: what they make of the database settings and the cursors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.db import prepared_cursor

ROOT = Path(__file__).resolve().parents[2]


def _settings_with(**env: str) -> dict[str, Any]:
    code = (
        "import json; from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(json.dumps({'options': d['OPTIONS'], 'max_age': d['CONN_MAX_AGE'],"
        " 'no_server_cursors': s.DISABLE_SERVER_SIDE_CURSORS}))"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=os.environ.get("DATABASE_URL", ""), **env)
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_database_pool_when_on_then_psycopg_pool_sized_by_threads_and_no_persistent_connections() -> None:
    got = _settings_with(DATABASE_POOL="true", WEB_THREADS="6", DB_CONN_MAX_AGE="60")

    assert got["options"]["pool"] == {"min_size": 1, "max_size": 6, "timeout": 10.0}
    assert got["max_age"] == 0  # Django refuses a pool with persistent connections


def test_prepared_statements_when_off_then_psycopg_never_prepares_and_no_server_side_cursors() -> None:
    default = _settings_with()
    off = _settings_with(DATABASE_PREPARED_STATEMENTS="false")

    assert default["options"] == {"prepare_threshold": 5} and default["no_server_cursors"] is False
    assert off["options"] == {"prepare_threshold": None} and off["no_server_cursors"] is True


@pytest.mark.django_db
def test_prepared_cursor_when_prepared_statements_off_then_django_cursor(settings: Any) -> None:
    from django.db import connection

    connection.force_debug_cursor = False
    with prepared_cursor() as on:
        assert type(on.cursor).__name__ == "PreparingCursor"
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_cursor() as off:
        off.execute("SELECT 1")
        assert type(off.cursor).__name__ != "PreparingCursor"
        assert off.fetchone() == (1,)
