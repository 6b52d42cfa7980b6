"""The stack under test: its database, Redis, the fake Stripe server, the web server (config/serve.py).

Every server binds 127.0.0.1, gets SIGTERM if the bench process dies
(``PR_SET_PDEATHSIG``) and is stopped by the bench when it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from config import embedded

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VAR = ROOT / "var" / "bench"


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the bench process goes away."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def database_urls() -> tuple[str, str]:
    """(server URL for maintenance, URL of the bench database)."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return _with_path(explicit, "/postgres"), explicit
    # Without DATABASE_URL, the embedded server under var/ (as for `make demo` and `make test`).
    base = os.environ.get("DATABASE_URL", "") or embedded.postgres_url()
    name = os.environ.get("BENCH_DB_NAME", "bench")
    return _with_path(base, "/postgres"), _with_path(base, f"/{name}")


def redis_url() -> str:
    explicit = os.environ.get("BENCH_REDIS_URL")
    if explicit:
        return explicit
    base = os.environ.get("REDIS_URL", "") or embedded.redis_url()
    if base.startswith("unix://"):  # the database is a query parameter of a socket URL
        parts = urlsplit(base)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "db=8", ""))
    return _with_path(base, "/8")


def migrations_fingerprint() -> str:
    """Changes whenever any migration file or the lock changes."""
    digest = hashlib.sha256()
    paths = [*sorted(ROOT.glob("*/migrations/*.py")), ROOT / "requirements.lock"]
    for path in paths:
        if path.exists():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class Stack:
    quick: bool
    workers: int = 2
    threads: int = 4
    log_level: str = "INFO"
    admin_url: str = ""
    db_url: str = ""
    server_db_url: str = ""  # the server's own, when it goes through a pooler (BENCH_SERVER_DATABASE_URL, --pgbouncer)
    redis: str = ""
    web_port: int = 0
    stripe_port: int = 0
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    webhook_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.admin_url, self.db_url = database_urls()
        self.server_db_url = os.environ.get("BENCH_SERVER_DATABASE_URL", "")
        self.redis = redis_url()
        self.web_port = free_port()
        self.stripe_port = free_port()
        VAR.mkdir(parents=True, exist_ok=True)

    @property
    def db_name(self) -> str:
        return urlsplit(self.db_url).path.lstrip("/")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def stripe_base(self) -> str:
        return f"http://127.0.0.1:{self.stripe_port}"

    def env(self) -> dict[str, str]:
        """The production environment of the server (and of every command run against it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_DB"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "bench.settings",
                "DEBUG": "false",
                "SECRET_KEY": self.secret_key,
                "ALLOWED_HOSTS": "127.0.0.1",
                "SECURE_SSL_REDIRECT": "false",
                "THROTTLE_SCALE": "0",
                "DATABASE_URL": self.server_db_url or self.db_url,
                "REDIS_URL": self.redis,
                "STRIPE_API_BASE": self.stripe_base,
                "STRIPE_WEBHOOK_SECRET": self.webhook_secret,
                "JWT_ACCESS_MINUTES": "120",
                "LOG_LEVEL": self.log_level,
                "PYTHONDONTWRITEBYTECODE": "1",
                # Collected by prepare_database, as the image does at build (config.E010 stops migrate without).
                "STATIC_ROOT": str(VAR / "static"),
            }
        )
        env.pop("TESTING", None)
        env.pop("STRIPE_SECRET_KEY", None)
        return env

    # --- database and redis -------------------------------------------------

    def prepare_database(self) -> None:
        """Creates the bench database from a migrated template (migrated once per migration set)."""
        started = time.perf_counter()
        template = f"bench_tpl_{migrations_fingerprint()}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # Two bench runs on one server (a developer's and a test's) take turns building and copying.
            conn.execute("SELECT pg_advisory_lock(hashtext('bench template'))")
            collected = subprocess.run(
                [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                cwd=ROOT,
                env=self.env(),
                capture_output=True,
                timeout=600,
                check=False,
            )
            if collected.returncode != 0:
                raise RuntimeError("collectstatic failed:\n" + collected.stderr.decode()[-3000:])
            existing = {
                row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_tpl_%'")
            }
            if template not in existing:
                for old in existing:
                    conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{template}"')
                env = self.env()
                env["DATABASE_URL"] = _with_path(self.db_url, f"/{template}")
                migrated = subprocess.run(
                    [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    timeout=600,
                    check=False,
                )
                if migrated.returncode != 0:
                    conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
                    raise RuntimeError("migrating the bench template failed:\n" + migrated.stderr.decode()[-3000:])
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}" TEMPLATE "{template}"')
        self.timings["prepare_database_s"] = round(time.perf_counter() - started, 2)

    def flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis)
        client.flushdb()
        client.close()

    # --- processes ------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (VAR / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self.procs[name] = proc
        return proc

    def start_fake_stripe(self) -> bool:
        script = ROOT / "scripts" / "fake_stripe.py"
        if not script.exists():
            return False
        argv = [PYTHON, str(script), "--port", str(self.stripe_port), "--from-scratch", "--no-persist", "--quiet"]
        self._spawn("fake_stripe", [*argv, "--parent-pid", str(os.getpid())])
        _wait_http(f"{self.stripe_base}/v1/customers", self.procs["fake_stripe"], timeout=30, ok_statuses=(200, 401))
        return True

    def setup_stripe(self) -> str | None:
        """``manage.py setup_stripe`` as a deployment runs it; the webhook path it prints (None: no command)."""
        done = self.manage("setup_stripe", "--no-register", timeout=120)
        if done.returncode != 0:
            if b"Unknown command" in done.stderr:
                return None
            raise RuntimeError("setup_stripe failed: " + done.stderr.decode(errors="replace")[-1500:])
        lines = done.stdout.decode().strip().splitlines()
        return lines[-1] if lines else None

    def web_argv(self) -> list[str]:
        """The production web server (config/serve.py) bound to 127.0.0.1; ``workers`` and ``threads``
        override its defaults when the bench is told to."""
        return [
            PYTHON,
            "-m",
            "config.serve",
            "--bind",
            f"127.0.0.1:{self.web_port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--graceful-timeout",
            "5",
            "--backlog",
            "2048",
        ]

    def start_web(self) -> None:
        self._spawn("web", self.web_argv())
        _wait_http(f"{self.base_url}/healthz", self.procs["web"], timeout=60)

    def start_celery(self) -> None:
        self._spawn(
            "celery",
            [
                str(Path(PYTHON).parent / "celery"),
                "-A",
                "config",
                "worker",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
        )

    def manage(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, timeout=timeout, check=False
        )

    def pids(self, name: str) -> list[int]:
        """A started process and its children (the web server's or Celery's workers)."""
        proc = self.procs.get(name)
        if proc is None:
            return []
        return [proc.pid, *_children(proc.pid)]

    def server_pids(self) -> list[int]:
        return self.pids("web")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], *, timeout: float, ok_statuses: tuple[int, ...] = (200,)
) -> None:
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} while starting (see var/bench/*.log)")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in ok_statuses:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok_statuses:
                return
            last = str(exc)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


# --- CPU accounting from /proc ------------------------------------------------


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """utime + stime in seconds of each live process among ``pids`` (their own, not their children's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two samples by the processes alive at both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry, "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """CPU seconds used by groups of processes (server, Celery, PostgreSQL) and the whole machine over a window.

    PostgreSQL's figure counts only the backends connected to the bench database when the window
    ends (one started during the window counts whole), not those serving other work on the machine.
    """

    def __init__(self, groups: dict[str, list[int]], *, admin_url: str = "", db_name: str = "") -> None:
        self.groups = groups
        self.admin_url = admin_url
        self.db_name = db_name
        self.t0 = time.perf_counter()
        self.before = {name: cpu_by_pid(pids) for name, pids in self.groups.items()}
        self.pg_before = cpu_by_pid(postgres_pids()) if admin_url else {}
        self.busy0, self.total0 = machine_busy()

    def _postgres_seconds(self) -> float:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            ours = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.db_name]
                )
            ]
        after = cpu_by_pid(ours)
        return sum(seconds - self.pg_before.get(pid, 0.0) for pid, seconds in after.items())

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0 or 1e-9
        busy1, total1 = machine_busy()
        figures: dict[str, float] = {"wall_seconds": round(wall, 2)}
        for name, pids in self.groups.items():
            # Processes started or ended during the window are not counted: ours are long-lived.
            figures[f"{name}_cpu_seconds"] = round(_delta(self.before[name], cpu_by_pid(pids)), 2)
        if self.admin_url:
            figures["postgres_cpu_seconds"] = round(self._postgres_seconds(), 2)
        figures["machine_busy_pct"] = round(100 * (busy1 - self.busy0) / max(1, total1 - self.total0), 1)
        return figures
