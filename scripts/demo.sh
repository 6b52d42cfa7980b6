#!/usr/bin/env bash
# `make demo`: the whole platform on this machine in its production topology, on
# embedded servers only: PostgreSQL and Redis from Python packages of the lock
# (data under var/, reused by the next run), the local fake Stripe server, the
# web server, a real Celery worker and Celery beat. Migrates, seeds the demo
# data, registers the webhook endpoint with the fake and serves
# http://127.0.0.1:$WEB_PORT until Ctrl-C, which stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
WEB_PORT=${WEB_PORT:-8000}
STRIPE_PORT=${STRIPE_PORT:-8420}
BASE_URL="http://127.0.0.1:${WEB_PORT}"

# Whatever the calling shell holds, the demo runs on the embedded defaults.
unset DATABASE_URL REDIS_URL CELERY_BROKER_URL CELERY_TASK_ALWAYS_EAGER STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET
export DEBUG=true
export STRIPE_API_BASE="http://127.0.0.1:${STRIPE_PORT}"
export PYTHONUNBUFFERED=1

say() { printf '\n==> %s\n' "$*"; }

port_busy() {
    "$PY" -c 'import socket, sys; s = socket.socket(); s.settimeout(0.5); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

wait_for() {  # wait_for URL SECONDS PID: polls until URL answers, fails early if PID dies
    "$PY" - "$@" <<'EOF'
import sys, time, urllib.error, urllib.request, os
url, seconds, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"the process serving {url} exited")
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answers, whatever the status
    except OSError:
        time.sleep(0.3)
sys.exit(f"{url} did not answer within {seconds:.0f} s")
EOF
}

STARTED_AT=$SECONDS
STRIPE_PID=""
WEB_PID=""
WORKER_PID=""
BEAT_PID=""
EMBEDDED_STARTED=""
cleanup() {
    trap - EXIT INT TERM
    local pids="$WEB_PID $BEAT_PID $WORKER_PID $STRIPE_PID"
    for pid in $pids; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$EMBEDDED_STARTED" ]]; then
        # shellcheck disable=SC2086  # a list of names
        "$PY" -m config.embedded stop $EMBEDDED_STARTED || true
    fi
    echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$WEB_PORT" "$STRIPE_PORT"; do
    if port_busy "$port"; then
        echo "port $port on 127.0.0.1 is already in use; stop what runs there or set WEB_PORT / PORT" >&2
        exit 1
    fi
done

say "starting the embedded PostgreSQL and Redis (data under var/)"
eval "$("$PY" -m config.embedded start)"
export DATABASE_URL REDIS_URL

say "migrating (the first run applies dj-stripe's many migrations)"
"$PY" manage.py migrate --noinput -v 0

say "seeding demo data"
LOGINS=$("$PY" manage.py seed_demo)

if [[ -f scripts/fake_stripe.py ]]; then
    say "starting the fake Stripe server on 127.0.0.1:${STRIPE_PORT}"
    "$PY" scripts/fake_stripe.py --port "$STRIPE_PORT" --parent-pid $$ --quiet &
    STRIPE_PID=$!
    wait_for "${STRIPE_API_BASE}/v1/customers" 60 "$STRIPE_PID"
    if [[ -f payments/management/commands/setup_stripe.py ]]; then
        say "preparing dj-stripe and registering the webhook endpoint with the fake"
        "$PY" manage.py setup_stripe --base-url "$BASE_URL"
    fi
else
    echo "scripts/fake_stripe.py not found: card payments are unavailable in this demo" >&2
fi

say "starting the Celery worker and beat"
"$PY" -m celery -A config worker --loglevel=WARNING --concurrency=2 --without-mingle --without-gossip &
WORKER_PID=$!
"$PY" -m celery -A config beat --loglevel=WARNING --schedule var/celerybeat-schedule &
BEAT_PID=$!

say "starting the web server on ${BASE_URL}"
"$PY" -m config.serve --bind "127.0.0.1:${WEB_PORT}" --workers 2 --graceful-timeout 5 &
WEB_PID=$!
wait_for "${BASE_URL}/api/v1/products" 60 "$WEB_PID"

cat <<EOF

The platform is up after $((SECONDS - STARTED_AT)) s, $(($(date +%s) - ${MAKE_STARTED:-$(date +%s)})) s since make demo began, install included
(Ctrl-C stops it, the worker, beat, the fake Stripe server
and the embedded PostgreSQL and Redis):
  API        ${BASE_URL}/api/v1/   e.g. curl ${BASE_URL}/api/v1/products
  API docs   ${BASE_URL}/api/docs/
  dashboard  ${BASE_URL}/dashboard/   (merchant login)
  admin      ${BASE_URL}/admin/       (staff login)
  Stripe     ${STRIPE_API_BASE}       (local fake; test card 4242 4242 4242 4242)
EOF
printf '%s\n' "$LOGINS" | sed 's/^/  /'
# Any of them exiting ends the demo (and cleanup stops the rest).
wait -n "$WEB_PID" "$WORKER_PID" "$BEAT_PID"
