# syntax=docker/dockerfile:1
# One image for every role: web (the default command), worker and beat differ
# only by the command compose.yaml gives them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: wheels of the locked production dependencies, hashes checked ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements-prod.lock .
RUN python -m pip wheel --require-hashes --no-deps --wheel-dir /wheels -r requirements-prod.lock

# --- runtime: slim, non-root, static files collected at build time -----------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DEBUG=false

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

# The wheels were hash-checked when the builder fetched them; install only those.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --no-deps /wheels/*.whl

WORKDIR /app
COPY --chown=root:root . .

# Throw-away values: settings refuse to load without them when DEBUG is off.
# Nothing here connects anywhere; the real values come from the environment at run time.
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost STRIPE_WEBHOOK_SECRET=whsec_collectstatic_only \
    python manage.py collectstatic --noinput -v 0 \
    && python -m compileall -q config accounts wallets catalog orders payments

# Numeric, so Kubernetes can verify runAsNonRoot (deploy/k8s uses the same uid).
USER 10001:10001
EXPOSE 8000

# /healthz with the Host header Django accepts (the first of ALLOWED_HOSTS).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; host = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].strip().lstrip('.').replace('*', 'localhost') or 'localhost'; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8000/healthz', headers={'Host': host}), timeout=4)"]

# granian in WSGI mode (config/serve.py, WEB_* variables); the contract's
# `gunicorn -c config/gunicorn.py config.wsgi` serves the same app if given as the command.
CMD ["python", "-m", "config.serve"]
