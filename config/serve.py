"""The web server for production: ``python -m config.serve`` runs granian's WSGI server on ``config.wsgi``.

Chosen by measurement (issue 18, docs/scaling.md): on this 2-core machine granian's Rust HTTP layer spent
about half of gunicorn gthread's CPU on the framework's trivial view, and its workers share the load
instead of one gthread worker taking most keep-alive connections. One process per core, each with a few
blocking threads for the application, since requests spend much of their time waiting on PostgreSQL and
Stripe. A worker that dies is started again; one whose memory passes ``WEB_MAX_RSS_MIB`` is replaced
(a leak guard, not a habit). Every value comes from the environment; the flags override it for one run
(the bench and the tests bind to 127.0.0.1 on a port of their own).

``gunicorn -c config/gunicorn.py config.wsgi`` (the contract's command) serves the same application.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SHM = "/dev/shm"  # noqa: S108 - memory, not the container's overlay filesystem; the files hold no data


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    workers: int
    threads: int
    backlog: int
    max_rss_mib: int  # 0: never replaced for its memory
    kill_timeout_s: int
    log_level: str


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _split_bind(bind: str, default_host: str) -> tuple[str, int]:
    """``host:port`` (``:port`` keeps ``default_host``)."""
    host, _, port = bind.rpartition(":")
    return host or default_host, int(port)


def config_from_env() -> ServerConfig:
    """The production values; ``WEB_BIND`` is ``host:port`` (inside the container; publish it as needed)."""
    host, port = _split_bind(os.environ.get("WEB_BIND", "0.0.0.0:8000"), "0.0.0.0")  # noqa: S104
    return ServerConfig(
        host=host,
        port=port,
        workers=_env_int("WEB_CONCURRENCY", os.cpu_count() or 1),
        threads=_env_int("WEB_THREADS", 4),
        backlog=_env_int("WEB_BACKLOG", 1024),
        # A warm worker holds about 130 MiB (bench memory_growth).
        max_rss_mib=_env_int("WEB_MAX_RSS_MIB", 512),
        # Requests in flight get this long to finish on a stop (below the orchestrator's grace period).
        kill_timeout_s=_env_int("WEB_GRACEFUL_TIMEOUT", 20),
        log_level=os.environ.get("WEB_LOG_LEVEL", "info").lower(),
    )


def metrics_dir_prepare() -> Path | None:
    """prometheus-client's multiprocess directory, set before any worker starts (each worker imports
    prometheus-client after it) and emptied of an earlier run's files. Returns the directory when it was
    made here (the caller removes it at exit), None when ``PROMETHEUS_MULTIPROC_DIR`` was given."""
    made = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = _SHM if os.path.isdir(_SHM) else tempfile.gettempdir()  # noqa: PTH112
        made = Path(tempfile.mkdtemp(prefix="platform-metrics-", dir=base))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(made)
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return made


def _parse(argv: list[str] | None) -> ServerConfig:
    base = config_from_env()
    parser = argparse.ArgumentParser(prog="python -m config.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", help="host:port (default WEB_BIND or 0.0.0.0:8000)")
    parser.add_argument("--workers", type=int, default=base.workers)
    parser.add_argument("--threads", type=int, default=base.threads)
    parser.add_argument("--backlog", type=int, default=base.backlog)
    parser.add_argument("--max-rss-mib", type=int, default=base.max_rss_mib, help="0: no memory limit")
    parser.add_argument("--graceful-timeout", type=int, default=base.kill_timeout_s)
    parser.add_argument("--log-level", default=base.log_level)
    args = parser.parse_args(argv)
    host, port = _split_bind(args.bind, base.host) if args.bind else (base.host, base.port)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    return ServerConfig(
        host=host,
        port=port,
        workers=args.workers,
        threads=args.threads,
        backlog=args.backlog,
        max_rss_mib=max(0, args.max_rss_mib),
        kill_timeout_s=args.graceful_timeout,
        log_level=args.log_level.lower(),
    )


def main(argv: list[str] | None = None) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    from config.logging import JSON_FORMATTER

    cfg = _parse(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    made = metrics_dir_prepare()
    try:
        Server(
            "config.wsgi:application",
            address=cfg.host,
            port=cfg.port,
            interface=Interfaces.WSGI,
            workers=cfg.workers,
            blocking_threads=cfg.threads,
            http=HTTPModes.http1,  # TLS and HTTP/2 end at the proxy in front
            websockets=False,
            backlog=cfg.backlog,
            respawn_failed_workers=True,
            respawn_interval=0.5,
            workers_max_rss=cfg.max_rss_mib or None,
            workers_kill_timeout=cfg.kill_timeout_s,
            # The platform logs one JSON access line per request itself (config.middleware).
            log_access=False,
            log_level=LogLevels(cfg.log_level),
            log_dictconfig={
                "formatters": {"json": JSON_FORMATTER},
                "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
                "loggers": {"_granian": {"handlers": ["console"], "propagate": False}},
            },
        ).serve()
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
