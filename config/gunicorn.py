"""gunicorn settings for production: ``gunicorn -c config/gunicorn.py config.wsgi``.

Sized for a 2-core machine: one process per core plus one, each with a few
threads, since requests spend much of their time waiting on PostgreSQL and
Stripe. Every value can be overridden from the environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_cores = os.cpu_count() or 1

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # inside the container; publish it on the host as needed
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", _cores + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# Above Stripe's 10 s timeout with its retries, below what a load balancer waits.
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

# Prometheus metrics from every worker (config.metrics): prometheus-client's multiprocess mode keeps
# each process's values in files under one directory, which /metrics sums. Set in the master when the
# server starts (so every worker it forks has it before importing prometheus-client; importing this
# module changes nothing), emptied then, a dead worker's files marked, and our own directory removed.
_metrics_dir_made = False


def on_starting(server: Any) -> None:
    global _metrics_dir_made
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = _SHM if os.path.isdir(_SHM) else tempfile.gettempdir()  # noqa: PTH112
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="platform-metrics-", dir=base)
        _metrics_dir_made = True
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _metrics_dir_made:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
