"""Fixtures of the cross-cutting API tests (idempotency, throttles, fuzzing, permissions)."""

from __future__ import annotations

import pytest
from django.db import connection

# Locking and concurrency tests: real PostgreSQL only (CI runs them there).
requires_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
