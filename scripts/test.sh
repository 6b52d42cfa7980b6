#!/usr/bin/env bash
# The whole suite: lint, format, types, then pytest. Extra arguments go to pytest.
# Uses PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set (CI sets them);
# otherwise it starts the embedded servers under var/ for the run and stops
# the ones it started when it ends (a running `make demo` keeps its own).
# Every step runs even when an earlier one fails, so one run shows every
# problem; the exit code is non-zero when any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

embedded=()
[[ -n "${DATABASE_URL:-}" ]] || embedded+=(postgres)
[[ -n "${REDIS_URL:-}" ]] || embedded+=(redis)
if ((${#embedded[@]})); then
    echo "==> starting the embedded ${embedded[*]} (var/)"
    eval "$(.venv/bin/python -m config.embedded start "${embedded[@]}")"
    # Stops only what this run started; a server that was already running (a demo) stays up.
    # shellcheck disable=SC2086  # a list of names
    trap '[[ -z "${EMBEDDED_STARTED:-}" ]] || .venv/bin/python -m config.embedded stop $EMBEDDED_STARTED' EXIT
fi

failed=()
step() {  # step NAME COMMAND...
    local name=$1
    shift
    echo "==> ${name}"
    "$@" || failed+=("${name} (exit $?)")
}

step "ruff check" .venv/bin/ruff check .
step "ruff format --check" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy .

echo "==> pytest"
.venv/bin/pytest "$@"
status=$?
if [[ $status -eq 5 ]]; then
    failed+=("pytest (exit 5: no tests collected)")
elif [[ $status -ne 0 ]]; then
    failed+=("pytest (exit ${status})")
fi

if ((${#failed[@]})); then
    printf '\nFAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "all green"
