"""gunicorn settings: ``gunicorn -c config/gunicorn.py config.wsgi``, the contract's command for the web.

Production, the image and the bench run granian instead (``python -m config.serve``, chosen by
measurement: docs/scaling.md); this serves the same application the same way, for a host that runs
gunicorn. One process per core plus one, each with a few threads, since requests spend much of their
time waiting on PostgreSQL and Stripe. Every value can be overridden from the environment.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from config.serve import metrics_dir_prepare

_cores = os.cpu_count() or 1

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # inside the container; publish it on the host as needed
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", _cores + 1))
# The same variable as config/serve.py's (GUNICORN_THREADS, its earlier name, still read).
threads = int(os.environ.get("WEB_THREADS", os.environ.get("GUNICORN_THREADS", 4)))
# The master's limit on a worker's heartbeat: a gthread worker's main loop beats while its threads serve,
# so this catches a stuck worker, not a slow request (nothing here limits a request's time).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 45))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
# A leak guard, not a habit: at a few hundred requests/s per worker, 2000 meant
# a restart (and a cold worker) every few seconds.
max_requests = 20000
max_requests_jitter = 2000
# Heartbeat files in memory, not on the container's overlay filesystem.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's own advice for containers; the files hold no data
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None  # noqa: PTH112
# The platform logs one JSON access line per request itself (config.middleware).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Trust X-Forwarded-* only from the proxy in front (comma-separated addresses).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# No control socket under ~/.gunicorn (gunicorn >= 25 creates one by default).
control_socket_disable = True

# Prometheus metrics from every worker (config.metrics): prometheus-client's multiprocess directory is set
# up in the master when the server starts, as config/serve.py does it (importing this module changes
# nothing), and removed at exit when it was made here.
_metrics_dir_made: Path | None = None


def on_starting(server: Any) -> None:
    global _metrics_dir_made
    _metrics_dir_made = metrics_dir_prepare()


def on_exit(server: Any) -> None:
    if _metrics_dir_made is not None:
        shutil.rmtree(_metrics_dir_made, ignore_errors=True)
