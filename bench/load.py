"""The HTTP load generators: ``wrk`` when it is installed, else asyncio + aiohttp in worker processes.

``run_load`` sends the prepared requests either way and hands back one compact record per
request; ``LoadResult.generator`` says which generator ran. ``BENCH_LOAD_GENERATOR`` chooses:
``auto`` (the default: wrk when it is on the PATH), ``wrk`` or ``python``.

The compiled one (``bench.wrk``, Debian's wrk with ``bench/wrk/load.lua``) costs a few
microseconds of CPU per request. The Python one imports nothing from Django, so a worker process
costs only aiohttp, but it takes a fraction of a millisecond per request from the cores the
server runs on. Each of its workers cycles through its share of the prepared requests with a
fixed number of connections in flight, until the time or the count bound is reached.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Any

from bench.wrk import run_wrk, wrk_binary

QUERY_HEADER = "X-Bench-Queries"


@dataclass(frozen=True, slots=True)
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(slots=True)
class Record:
    """One request: when it ended (s since the run started), how long it took, what came back."""

    ended: float
    latency: float
    status: int  # 0: no response (connection error or timeout)
    queries: int  # -1: the server did not say
    code: str = ""  # the error envelope's code for non-2xx answers
    index: int = -1  # which of the prepared requests it was


@dataclass(slots=True)
class LoadResult:
    records: list[Record]
    wall: float
    worker_cpu: float  # CPU seconds the generator processes used
    workers: int  # generator processes
    concurrency: int  # connections in flight
    generator: str = "python"  # "python" (aiohttp workers) or "wrk"
    details: dict[str, Any] = field(default_factory=dict)  # the generator's own figures (wrk's)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def _run_worker(
    base_url: str,
    requests: list[Req],
    concurrency: int,
    duration: float,
    max_requests: int,
    idempotency_prefix: str | None,
    start_at: float,
    timeout: float,
    index_base: int = 0,
    index_step: int = 1,
) -> list[Record]:
    import aiohttp

    records: list[Record] = []
    next_index = 0
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, ttl_dns_cache=None)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    # Wait for the common start so every worker's clock agrees.
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.perf_counter()
    deadline = t0 + duration

    async with aiohttp.ClientSession(
        base_url=base_url, connector=connector, timeout=client_timeout, skip_auto_headers=("User-Agent",)
    ) as session:

        async def one_client() -> None:
            nonlocal next_index, issued
            while True:
                now = time.perf_counter()
                if now >= deadline or issued >= max_requests:
                    return
                position = next_index % len(requests)
                req = requests[position]
                seq = issued
                next_index += 1
                issued += 1
                headers = req.headers
                if idempotency_prefix is not None and req.method == "POST":
                    headers = {**headers, "Idempotency-Key": f"{idempotency_prefix}-{seq}"}
                started = time.perf_counter()
                status = 0
                queries = -1
                code = ""
                try:
                    async with session.request(req.method, req.path, headers=headers, data=req.body) as resp:
                        payload = await resp.read()
                        status = resp.status
                        queries = int(resp.headers.get(QUERY_HEADER, "-1"))
                        if status >= 300:
                            code = _error_code(payload)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    code = type(exc).__name__
                ended = time.perf_counter()
                records.append(
                    Record(ended - t0, ended - started, status, queries, code, index_base + position * index_step)
                )

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return records


def _error_code(payload: bytes) -> str:
    try:
        return str(json.loads(payload)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def _worker_main(args: tuple[Any, ...], conn: Any) -> None:
    import aiohttp  # noqa: F401 - imported before the CPU count starts: start-up is not load

    cpu0 = _cpu_seconds()
    records = asyncio.run(_run_worker(*args))
    conn.send(([(r.ended, r.latency, r.status, r.queries, r.code, r.index) for r in records], _cpu_seconds() - cpu0))
    conn.close()


GENERATORS = ("auto", "wrk", "python")


def chosen_generator() -> str:
    """``wrk`` or ``python``, from ``BENCH_LOAD_GENERATOR`` (``auto``: wrk when it is installed)."""
    wanted = os.environ.get("BENCH_LOAD_GENERATOR", "auto") or "auto"
    if wanted not in GENERATORS:
        raise ValueError(f"BENCH_LOAD_GENERATOR={wanted!r}: choose one of {', '.join(GENERATORS)}")
    if wanted == "auto":
        return "wrk" if wrk_binary() else "python"
    return wanted


def run_load(
    base_url: str,
    requests: list[Req],
    *,
    concurrency: int,
    duration: float,
    max_requests: int = 10**9,
    workers: int = 1,
    idempotency_prefix: str | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Runs ``requests`` (cycled) against ``base_url``, with wrk or the Python generator (``chosen_generator``).

    ``concurrency`` connections in flight in total; stops after ``duration`` seconds or
    ``max_requests`` requests, whichever comes first, and counts every request sent. POSTs get
    an ``Idempotency-Key`` of their own when ``idempotency_prefix`` is given.

    ``workers`` is the Python generator's process count (worker ``w`` takes the requests
    ``w, w + workers, …``); wrk runs one process with ``BENCH_WRK_THREADS`` event-loop threads
    (default 1, which keeps up with this server many times over).
    """
    if not requests:
        raise ValueError("no requests to send")
    if chosen_generator() == "wrk":
        run = run_wrk(
            base_url,
            requests,
            concurrency=concurrency,
            duration=duration,
            max_requests=max_requests,
            threads=int(os.environ.get("BENCH_WRK_THREADS", "1")),
            idempotency_prefix=idempotency_prefix,
            timeout=timeout,
            query_header=QUERY_HEADER,
        )
        return LoadResult(
            records=[Record(*row) for row in run.rows],
            wall=run.wall,
            worker_cpu=run.cpu_seconds,
            workers=1,
            concurrency=concurrency,
            generator="wrk",
            details=run.details,
        )
    return _run_python(
        base_url,
        requests,
        concurrency=concurrency,
        duration=duration,
        max_requests=max_requests,
        workers=workers,
        idempotency_prefix=idempotency_prefix,
        timeout=timeout,
    )


def _run_python(
    base_url: str,
    requests: list[Req],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    workers: int,
    idempotency_prefix: str | None,
    timeout: float,
) -> LoadResult:
    workers = max(1, min(workers, concurrency))
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 0.5 + 0.3 * workers
    procs = []
    pipes = []
    for w in range(workers):
        share = requests[w::workers]
        if not share:
            continue
        per_conc = concurrency // workers + (1 if w < concurrency % workers else 0)
        per_max = max_requests // workers + (1 if w < max_requests % workers else 0)
        prefix = f"{idempotency_prefix}-{w}" if idempotency_prefix is not None else None
        args = (base_url, share, per_conc, duration, per_max, prefix, start_at, timeout, w, workers)
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_main, args=(args, child), daemon=True)
        proc.start()
        child.close()
        procs.append(proc)
        pipes.append(parent)
    records: list[Record] = []
    cpu = 0.0
    wall = 0.0
    for proc, pipe in zip(procs, pipes, strict=True):
        if not pipe.poll(duration + timeout + 30):
            proc.kill()
            raise RuntimeError("a load worker did not report back in time")
        raw, worker_cpu = pipe.recv()
        proc.join(10)
        cpu += worker_cpu
        for ended, latency, status, queries, code, index in raw:
            records.append(Record(ended, latency, status, queries, code, index))
            wall = max(wall, ended)
    return LoadResult(
        records=records, wall=wall, worker_cpu=cpu, workers=len(procs), concurrency=concurrency, generator="python"
    )
