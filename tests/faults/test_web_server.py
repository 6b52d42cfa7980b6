"""The production web server, ``python -m config.serve`` (granian, WSGI), run for real on 127.0.0.1.

Its settings come from the environment and the flags override them; it serves the application from
every worker, sums their metrics in one prometheus-client directory it makes and removes, logs JSON,
and stops cleanly on SIGTERM. (A worker SIGKILLed mid-purchase: test_stripe_and_web_faults.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.stack import _children, _die_with_parent, free_port
from config.serve import ServerConfig, _parse, config_from_env
from tests.faults.conftest import ROOT, server_env, suite_database_url

TOKEN = "serve-test-metrics-token"


def test_config_when_nothing_set_then_one_worker_per_core_on_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEB_BIND", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_MAX_RSS_MIB", "WEB_GRACEFUL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    cfg = config_from_env()
    assert (cfg.host, cfg.port) == ("0.0.0.0", 8000)
    assert cfg.workers == (os.cpu_count() or 1)
    assert (cfg.threads, cfg.max_rss_mib, cfg.kill_timeout_s) == (4, 512, 20)


def test_config_when_env_and_flags_then_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_BIND", "10.0.0.5:9000")
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    monkeypatch.setenv("WEB_THREADS", "6")
    monkeypatch.setenv("WEB_MAX_RSS_MIB", "300")
    assert config_from_env() == ServerConfig("10.0.0.5", 9000, 5, 6, 1024, 300, 20, "info")
    cfg = _parse(["--bind", "127.0.0.1:8123", "--workers", "2", "--max-rss-mib", "0", "--log-level", "WARNING"])
    assert cfg == ServerConfig("127.0.0.1", 8123, 2, 6, 1024, 0, 20, "warning")


def test_config_when_no_worker_asked_for_then_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        _parse(["--workers", "0"])
    assert refused.value.code == 2
    assert "--workers and --threads must be at least 1" in capsys.readouterr().err


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def served(fake_stripe_server: str, django_db_setup: Any, django_db_blocker: Any, tmp_path: Path) -> Iterator[Served]:
    """The server with two workers on the suite's database, in a process group of its own."""
    with django_db_blocker.unblock():
        database_url = suite_database_url()
    env = {**server_env(database_url, fake_stripe_server, METRICS_TOKEN=TOKEN), "LOG_LEVEL": "INFO"}
    port = free_port()
    log = tmp_path / "web.log"
    argv = [sys.executable, "-m", "config.serve", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"]
    argv += ["--graceful-timeout", "3"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield Served(url=url, proc=proc, log=log)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _metrics_dirs_of(pid: int) -> list[Path]:
    """The directories config.serve makes (under /dev/shm, else the temporary directory) holding a
    counter file of this process."""
    bases = [Path("/dev/shm"), Path(tempfile.gettempdir())]
    return [p.parent for base in bases for p in base.glob(f"platform-metrics-*/counter_{pid}.db")]


def _requests_counted(url: str) -> float:
    text = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("django_http_requests_total_by_method_total{") and 'method="GET"' in line
    )


def test_server_when_loaded_then_every_worker_serves_and_metrics_sum_them_and_sigterm_stops_cleanly(
    served: Served,
) -> None:
    workers = _children(served.proc.pid)
    assert len(workers) == 2, workers
    before = _requests_counted(served.url)
    for _ in range(60):  # a new connection each: the kernel spreads them over the workers' sockets
        assert requests.get(f"{served.url}/healthz", headers={"Connection": "close"}, timeout=5).status_code == 200
    # Each worker that served keeps its own counter file, both in the one directory; /metrics sums them.
    dirs = {pid: _metrics_dirs_of(pid) for pid in workers}
    assert all(len(found) == 1 for found in dirs.values()), dirs
    assert len({found[0] for found in dirs.values()}) == 1, dirs
    metrics_dir = dirs[workers[0]][0]
    assert _requests_counted(served.url) >= before + 60

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(15) == 0
    assert not metrics_dir.exists()  # made at start, removed at exit
    lines = [line for line in served.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r.get("logger") == "_granian" and "Starting granian" in r["message"] for r in records)
    assert any(r.get("logger") == "access" and r.get("path") == "/healthz" for r in records)
