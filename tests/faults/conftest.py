"""One shared stack per fault module: the production web server (config/serve.py) and a real Celery worker
on the test database, with the platform's Stripe calls going through the fault proxy to the run's fake
Stripe server.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection

from bench.stack import _children, _die_with_parent, free_port
from tests.faults.proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def suite_database_url() -> str:
    """The suite's database as a URL for subprocesses (a socket directory is percent-encoded)."""
    db = connection.settings_dict
    host = quote(db["HOST"] or "127.0.0.1", safe="")  # the embedded server's host is a socket directory
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"


@functools.cache
def collected_static() -> str:
    """A STATIC_ROOT with the static files collected, as the image has them (production settings refuse
    commands and readyz answers 503 without them: config.E010). Collected once per test run."""
    root = tempfile.mkdtemp(prefix="faults-static-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_DB"))}
    env.pop("TESTING", None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        STATIC_ROOT=root,
        DEBUG="false",  # the manifest storage, as in production
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        STRIPE_WEBHOOK_SECRET="whsec_" + "faults0test" * 3,
    )
    done = subprocess.run(
        [str(BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def server_env(database_url: str, stripe_base: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_DB", "CELERY_", "PROMETHEUS_"))}
    env.pop("TESTING", None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,  # the test mints the JWTs the server checks
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        THROTTLE_SCALE="0",
        DATABASE_URL=database_url,
        REDIS_URL=settings.REDIS_URL,
        STRIPE_API_BASE=stripe_base,
        STRIPE_WEBHOOK_SECRET="whsec_" + "faults0test" * 3,  # startup wants one; deliveries check the endpoint row
        STRIPE_TIMEOUT_SECONDS="2",
        STRIPE_MAX_NETWORK_RETRIES="0",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
        STATIC_ROOT=collected_static(),
        **extra,
    )
    return env


@dataclass
class FaultStack:
    """The production web server (``web``, config/serve.py) and Celery workers (``worker_N``), each in a
    process group of its own that gets SIGTERM when the test process dies; ``proxy`` sits between them
    and the fake Stripe server."""

    logs: Path
    env: dict[str, str]
    proxy: FaultProxy
    web_url: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    workers_started: int = 0

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self.procs[name] = proc
        return proc

    def start_web(self) -> None:
        port = free_port()
        argv = [str(BIN / "python"), "-m", "config.serve", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", "2", "--threads", "4", "--graceful-timeout", "3"]
        self.spawn("web", argv)
        self.web_url = f"http://127.0.0.1:{port}"
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs["web"].poll() is not None:
                raise RuntimeError(f"the web server exited while starting:\n{self.log('web')}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.web_url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not answer within {timeout}s:\n{self.log('web')}")

    def start_worker(self) -> str:
        self.workers_started += 1
        name = f"worker_{self.workers_started}"
        argv = [str(BIN / "celery"), "-A", "config", "worker", "-n", f"{name}@%h", "--concurrency", "1"]
        argv += ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"]
        self.spawn(name, argv)
        return name

    def web_workers(self) -> list[int]:
        return _children(self.procs["web"].pid)

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group (a Celery worker's pool children too): no cleanup runs."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.proxy.stop()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def fault_stack(
    fake_stripe_server: str, django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    """The web server and one Celery worker, shared by the module's tests (each test flushes the tables itself)."""
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # this run's own Redis database: broker and cache
    upstream = urlsplit(fake_stripe_server)
    proxy = FaultProxy(upstream.hostname or "127.0.0.1", upstream.port or 80).start()
    with django_db_blocker.unblock():
        database_url = suite_database_url()
    stack = FaultStack(logs=tmp_path_factory.mktemp("faults"), env=server_env(database_url, proxy.url), proxy=proxy)
    try:
        stack.start_web()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def faults(fault_stack: FaultStack, fake_stripe: Any) -> Iterator[FaultStack]:
    """The shared stack with the fake Stripe reset and the proxy passing everything again afterwards."""
    fault_stack.proxy.set("pass")
    yield fault_stack
    fault_stack.proxy.set("pass")
