"""The compiled load generator: Debian's ``wrk`` (4.1, C and LuaJIT) driven by ``bench/wrk/load.lua``.

It sends the same prepared requests as the Python generator in ``bench.load`` and hands back the
same per-request rows, at a few microseconds of CPU per request instead of a fraction of a
millisecond, so the client no longer takes the server's cores. ``bench.load.run_load`` picks it
when ``wrk`` is on the PATH (``BENCH_LOAD_GENERATOR`` chooses: ``auto``, ``wrk`` or ``python``).

How it runs: the requests go to a file the Lua script reads at start; one wrk process with
``threads`` event-loop threads keeps ``concurrency`` connections busy (split evenly among the
threads). The script stops by itself at the time or request bound once every request it sent
is answered, so nothing the server did goes uncounted; ``-d`` (duration plus the timeout) is
only the backstop. The server must echo ``X-Request-ID`` (the platform's RequestIdMiddleware
does): that is how each answer is matched with its request. The CPU figure is the wrk
process's own user and system time, from ``wait4``.

Latency: each row's latency is measured by the script, from handing the request to wrk to the
answer, and the scenarios' percentiles come from the rows, as with the Python generator. wrk's
own percentiles (its ``done()`` histogram) are reported beside them as ``wrk_latency_ms``; wrk
corrects that histogram for coordinated omission (it adds the samples a closed loop missed
behind slow answers), so its p99 can be the higher of the two.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

SCRIPT = Path(__file__).resolve().parent / "wrk" / "load.lua"


class _Request(Protocol):
    """What a prepared request offers (``bench.load.Req``)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def body(self) -> bytes | None: ...


# One request's outcome: (ended s since the start, latency s, status, SQL statements, error code, index).
Row = tuple[float, float, int, int, str, int]


@dataclass
class WrkRun:
    rows: list[Row]
    wall: float  # s from the first request sent to the last answer
    cpu_seconds: float  # the wrk process's user + system time
    threads: int
    details: dict[str, Any] = field(default_factory=dict)


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def _render(base_url: str, requests: Sequence[_Request]) -> bytes:
    """The requests file the Lua script reads: each head without its blank line, then the body."""
    host = urlsplit(base_url).netloc
    chunks: list[bytes] = []
    for req in requests:
        lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}"]
        for name, value in req.headers.items():
            if any(c in name + value for c in "\r\n") or ":" in name:
                raise ValueError(f"header {name!r} cannot be sent as is")
            lines.append(f"{name}: {value}")
        body = req.body or b""
        if req.body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n").encode()
        idempotent = "1" if req.method == "POST" else "0"
        chunks.append(f"{len(head)} {len(body)} {idempotent}\n".encode() + head + body)
    return b"".join(chunks)


def _parse(text: str) -> tuple[list[Row], dict[str, Any], float]:
    """Rows (times from the first request of any thread), wrk's own figures, and the wall time."""
    raw: list[tuple[int, int, int, int, int, str, int]] = []  # thread, ended µs, latency µs, status, …
    starts: dict[int, int] = {}
    threads: list[dict[str, int]] = []
    details: dict[str, Any] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "r":
            tid, ended, latency, status, queries, index, code = rest.split(" ", 6)
            raw.append((int(tid), int(ended), int(latency), int(status), int(queries), code, int(index)))
        elif kind == "thread":
            tid, start, sent, answered, closed, uncorrelated = (int(v) for v in rest.split())
            starts[tid] = start
            threads.append(
                {
                    "thread": tid,
                    "sent": sent,
                    "answered": answered,
                    "closed_by_server": closed,
                    "uncorrelated": uncorrelated,
                }
            )
        elif kind == "summary":
            duration, responses, read, connect, err_read, write, _status, timeout = (int(v) for v in rest.split())
            details["wrk_summary"] = {"seconds": round(duration / 1e6, 3), "responses": responses, "bytes": read}
            details["socket_errors"] = {"connect": connect, "read": err_read, "write": write, "timeout": timeout}
        elif kind == "latency":
            p50, p95, p99, p999, top, _mean = (float(v) / 1000 for v in rest.split())
            details["wrk_latency_ms"] = {
                "p50": round(p50, 2),
                "p95": round(p95, 2),
                "p99": round(p99, 2),
                "p99.9": round(p999, 2),
                "max": round(top, 2),
            }
    details["closed_by_server"] = sum(t["closed_by_server"] for t in threads)
    details["uncorrelated_responses"] = sum(t["uncorrelated"] for t in threads)
    details["no_response"] = sum(t["sent"] - t["answered"] for t in threads)
    details["threads_figures"] = threads
    origin = min((s for s in starts.values() if s >= 0), default=0)
    rows: list[Row] = []
    wall = 0.0
    for tid, ended_us, latency_us, status, queries, code, index in raw:
        ended = (starts.get(tid, origin) + ended_us - origin) / 1e6
        wall = max(wall, ended)
        rows.append((ended, latency_us / 1e6, status, queries, code, index))
    return rows, details, wall


def run_wrk(
    base_url: str,
    requests: Sequence[_Request],
    *,
    concurrency: int,
    duration: float,
    max_requests: int = 10**9,
    threads: int = 1,
    idempotency_prefix: str | None = None,
    timeout: float = 30.0,
    query_header: str = "X-Bench-Queries",
) -> WrkRun:
    """Runs ``requests`` (cycled) with ``concurrency`` connections until ``duration`` seconds or
    ``max_requests`` requests, whichever comes first, and waits for every answer."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    if not requests:
        raise ValueError("no requests to send")
    # wrk gives each thread connections // threads: keep them whole, and every thread a request.
    threads = max(1, min(threads, concurrency, len(requests)))
    while concurrency % threads:
        threads -= 1
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        requests_file = Path(tmp, "requests")
        requests_file.write_bytes(_render(base_url, requests))
        out = Path(tmp, "out")
        env = {
            **os.environ,
            "BENCH_WRK_REQUESTS": str(requests_file),
            "BENCH_WRK_OUT": str(out),
            "BENCH_WRK_THREADS": str(threads),
            "BENCH_WRK_DURATION": repr(float(duration)),
            "BENCH_WRK_MAX": str(int(max_requests)),
            "BENCH_WRK_IDEMPOTENCY": idempotency_prefix or "",
            "BENCH_WRK_QUERY_HEADER": query_header,
        }
        backstop = ceil(duration + timeout) + 1
        argv = [
            binary,
            "--threads",
            str(threads),
            "--connections",
            str(concurrency),
            "--duration",
            f"{backstop}s",
            "--timeout",
            f"{ceil(timeout)}s",
            "--script",
            str(SCRIPT),
            base_url,
        ]
        stdout_path = Path(tmp, "stdout")
        with stdout_path.open("wb") as stdout:
            proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.STDOUT)
            try:
                _, wait_status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
        printed = stdout_path.read_text(errors="replace")
        # Every thread left its mark (and its records) once all its requests were answered; without
        # them -d ended the run.
        drained = all(Path(tmp, f"out.drained.{t}").exists() for t in range(threads))
        own = [Path(tmp, f"out.thread.{t}") for t in range(threads)]
        if proc.returncode != 0 and not (drained and all(path.exists() for path in own)):
            raise RuntimeError(f"wrk exited with {proc.returncode}:\n{printed[-2000:]}")
        if proc.returncode == 0 and not out.exists():
            raise RuntimeError(f"wrk wrote no report:\n{printed[-2000:]}")
        text = "".join(path.read_text() for path in own if path.exists())
        rows, details, wall = _parse(text + (out.read_text() if out.exists() else ""))
        details["drained"] = drained
        if proc.returncode != 0:  # died tearing down after every answer was in: the records are whole
            details["wrk_exit_after_drain"] = proc.returncode
    details["threads"] = threads
    return WrkRun(rows=rows, wall=wall, cpu_seconds=usage.ru_utime + usage.ru_stime, threads=threads, details=details)
