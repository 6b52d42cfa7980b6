"""Debian's PgBouncer (``/usr/sbin/pgbouncer``) in front of the bench's or a test's PostgreSQL.

One instance of our own on a free 127.0.0.1 port, its configuration in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

PGBOUNCER = "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """``pool_mode`` transaction or session; ``url_for(url)`` is ``url`` through it (same database and user).

    Authentication is ``any``: PgBouncer logs in to PostgreSQL as the upstream URL's user.
    """

    def __init__(self, upstream_url: str, *, pool_mode: str = "transaction", pool_size: int = 20) -> None:
        self.upstream = urlsplit(upstream_url)
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url_for(self, url: str) -> str:
        parts = urlsplit(url)
        user = parts.username or "postgres"
        return urlunsplit((parts.scheme, f"{user}@127.0.0.1:{self.port}", parts.path, "", ""))

    def _config(self) -> str:
        host = unquote(self.upstream.hostname or "127.0.0.1")
        if "%2F" in (self.upstream.netloc or "").upper():  # a unix-socket directory in the URL's host
            host = unquote(self.upstream.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0])
        user = self.upstream.username or "postgres"
        return "\n".join(
            [
                "[databases]",
                f"* = host={host} port={self.upstream.port or 5432} user={user}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = any",
                f"pool_mode = {self.pool_mode}",
                "max_client_conn = 1000",
                f"default_pool_size = {self.pool_size}",
                "ignore_startup_parameters = extra_float_digits,options",
                f"logfile = {self.dir / 'pgbouncer.log'}",
                "",
            ]
        )

    def start(self) -> PgBouncer:
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(self._config())
        argv = [PGBOUNCER, str(ini)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: it drops to postgres
            shutil.chown(self.dir, "postgres")
            self.dir.chmod(0o755)
            argv[1:1] = ["-u", "postgres"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.proc.stderr.read().decode()[-1500:]}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("pgbouncer did not listen within 10 s")

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
