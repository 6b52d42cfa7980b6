"""Settings for the test suite: the real settings with fast password hashing."""

import os

os.environ.setdefault("TESTING", "1")

from config.settings import *  # noqa: F403
from config.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Lets several suites run side by side on one server, each on its own database.
_suffix = os.environ.get("TEST_DB_SUFFIX", "")
if _suffix:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{_suffix}"}
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False

LOGGING["root"]["level"] = os.environ.get("LOG_LEVEL", "WARNING")  # type: ignore[index]  # noqa: F405

# Tasks run in-process in tests, whatever broker the environment names; the
# tests that need a real worker start one against the real broker themselves.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
RECEIPT_BATCH_SECONDS = 0.0  # eager tasks: every paying commit sends its receipt at once
