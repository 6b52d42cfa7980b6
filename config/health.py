"""Liveness and readiness probes, and the start-up check that static files were collected.

With DEBUG off, pages need collectstatic's files and manifest; without them pages render unstyled (never 500).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core import checks as system_checks
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    cache.set("readyz", "1", 5)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache did not return what was written")


def _check_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        # One quick retry, no back-off: a probe must answer within its own timeout.
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


COLLECTSTATIC_FIX = "python manage.py collectstatic --noinput"
# config.E010's own tag, not Tags.staticfiles: collectstatic runs the staticfiles checks, so under that tag the
# check would block the very command that fixes it. `check`, `migrate` and `runserver` run every tag.
STATIC_COLLECTED_TAG = "static_collected"


def static_files_problem() -> str:
    """Why pages cannot render their static files, or "" when they can (DEBUG serves them from the sources)."""
    if settings.DEBUG:
        return ""
    storage = staticfiles_storage
    if not isinstance(storage, ManifestFilesMixin):
        return ""
    try:
        found = storage.exists(storage.manifest_name)
    except OSError as exc:
        return f"The static files' manifest cannot be read ({exc}); run `{COLLECTSTATIC_FIX}`."
    if not found:
        return (
            f"Static files are not collected: {settings.STATIC_ROOT}/{storage.manifest_name} is missing, so pages"
            f" render without their stylesheets and scripts. Run `{COLLECTSTATIC_FIX}` (the image does it at build)."
        )
    return ""


def check_static_files(**kwargs: object) -> list[system_checks.CheckMessage]:
    """System check ``config.E010`` (the dashboard app registers it under STATIC_COLLECTED_TAG): fails start-up
    (check, migrate, runserver) without collected static files, but never collectstatic itself."""
    problem = static_files_problem()
    if not problem:
        return []
    return [system_checks.Error(problem, hint=COLLECTSTATIC_FIX, id="config.E010")]


def static_files_log_at_start() -> None:
    """Says at WSGI start what config.E010 says (gunicorn runs no system checks); pages still render without it."""
    problem = static_files_problem()
    if problem:
        logger.error("config.E010 %s", problem, extra={"fix": COLLECTSTATIC_FIX})


def _check_static() -> None:
    problem = static_files_problem()
    if problem:
        raise RuntimeError(problem)


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database, "cache": _check_cache, "static": _check_static}
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = _check_broker
    results: dict[str, str] = {}
    failing: list[str] = []
    problems: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001  # a probe reports any failure, whatever its kind
            logger.warning("readiness check failed", extra={"check": name, "error": str(exc)})
            results[name] = "failing"
            failing.append(name)
            if name == "static":
                problems[name] = str(exc)  # ours, and it names the fix
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": results}
        if problems:
            body["problems"] = problems
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": results})
