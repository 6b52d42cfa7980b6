#!/usr/bin/env bash
# The whole suite: lint, format, types, then pytest. Extra arguments go to pytest.
# Uses PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set (CI sets them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
echo "==> ruff check" && .venv/bin/ruff check .
echo "==> ruff format --check" && .venv/bin/ruff format --check .
echo "==> mypy" && .venv/bin/mypy .
echo "==> pytest"
status=0
.venv/bin/pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests: that is a failure" >&2
fi
exit "$status"
