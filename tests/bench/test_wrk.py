"""The compiled load generator (``bench.wrk``, Debian's wrk with ``bench/wrk/load.lua``) against a tiny
server of the test's own on 127.0.0.1: every request it sends is counted once, with its own status,
error code, SQL count, latency and headers. wrk is installed in CI (``.ci/run``); without it these fail."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.load import QUERY_HEADER, Req, chosen_generator, run_load
from bench.report import summarize, summarize_load
from bench.wrk import run_wrk

SLOW_SECONDS = 0.03


@dataclass
class Seen:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[dict[str, str]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the web server serves
    # Head and body in one write, no Nagle: else each answer waits out the client's delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True
    seen: Seen

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, payload: bytes, *, queries: int | None, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        rid = self.headers.get("X-Request-ID")
        if rid and self.path != "/anonymous":
            self.send_header("X-Request-ID", rid)
        if queries is not None:
            self.send_header(QUERY_HEADER, str(queries))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def _record(self, body: bytes) -> None:
        with self.seen.lock:
            self.seen.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization", ""),
                    "idempotency_key": self.headers.get("Idempotency-Key", ""),
                    "body": body.decode(),
                }
            )

    def do_GET(self) -> None:
        self._record(b"")
        if self.path == "/ping":
            self._answer(200, b'{"pong":true}', queries=0)
        elif self.path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._answer(200, b'{"slow":true}', queries=1)
        elif self.path == "/close":
            self._answer(200, b"{}", queries=None, close=True)
        elif self.path == "/anonymous":  # answers without echoing the request id
            self._answer(200, b"{}", queries=None)
        else:
            self._answer(500, b"not json at all", queries=None)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._record(body)
        product = json.loads(body)["product"]
        if product == "sold-out":
            error = {"error": {"type": "invalid_request_error", "code": "out_of_stock", "message": "Sold out."}}
            self._answer(409, json.dumps(error).encode(), queries=2)
        else:
            self._answer(201, json.dumps({"id": "ord_1", "product": product}).encode(), queries=3)


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _order(product: str, token: str) -> Req:
    body = json.dumps({"product": product, "quantity": 1}).encode()
    return Req("POST", "/orders", {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, body)


# Five kinds, cycled: index % 5 says which one a record answered.
MIX = [
    Req("GET", "/ping"),
    _order("p-1", "token-buyer-a"),
    _order("sold-out", "token-buyer-b"),
    Req("GET", "/slow"),
    Req("GET", "/broken"),
]


def test_run_wrk_when_bounded_by_count_then_every_request_is_counted_with_its_own_answer(server):
    base_url, seen = server
    run = run_wrk(base_url, MIX, concurrency=4, duration=60, max_requests=100, idempotency_prefix="t")
    assert len(run.rows) == 100
    assert len(seen.requests) == 100  # the request wrk checks before the run is not sent
    assert run.details["drained"] is True
    assert run.details["no_response"] == 0
    assert run.details["uncorrelated_responses"] == 0
    assert run.details["closed_by_server"] == 0  # keep-alive held: no answer said Connection: close
    assert run.details["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0}

    # Each record is matched with the request it answered.
    kinds = Counter((index % 5, status, code) for _, _, status, _, code, index in run.rows)
    assert kinds == {
        (0, 200, ""): 20,
        (1, 201, ""): 20,
        (2, 409, "out_of_stock"): 20,
        (3, 200, ""): 20,
        (4, 500, "?"): 20,
    }
    slow = [latency for _, latency, _, _, _, index in run.rows if index % 5 == 3]
    assert min(slow) >= SLOW_SECONDS
    queries = {index % 5: q for _, _, _, q, _, index in run.rows}
    assert queries == {0: 0, 1: 3, 2: 2, 3: 1, 4: -1}
    assert all(0 < ended <= run.wall for ended, *_ in run.rows)

    # Per-request headers: the buyer's own token with its own body, a fresh Idempotency-Key on every POST only.
    posts = [r for r in seen.requests if r["method"] == "POST"]
    assert len(posts) == 40
    assert {(r["authorization"], json.loads(r["body"])["product"]) for r in posts} == {
        ("Bearer token-buyer-a", "p-1"),
        ("Bearer token-buyer-b", "sold-out"),
    }
    keys = [r["idempotency_key"] for r in posts]
    assert len(set(keys)) == 40
    assert all(key.startswith("t-0-") for key in keys)
    assert all(r["idempotency_key"] == "" for r in seen.requests if r["method"] == "GET")

    # wrk's own histogram (done()) saw the slow answers too.
    wrk_latency = run.details["wrk_latency_ms"]
    assert wrk_latency["max"] >= SLOW_SECONDS * 1000
    assert 0 < wrk_latency["p50"] <= wrk_latency["p99"] <= wrk_latency["max"]


def test_run_load_when_wrk_runs_then_figures_are_summarized_as_for_the_python_generator(server, monkeypatch):
    base_url, _ = server
    monkeypatch.setenv("BENCH_LOAD_GENERATOR", "wrk")
    result = run_load(base_url, MIX, concurrency=5, duration=60, max_requests=50, idempotency_prefix="s")
    figures = summarize_load(result)
    assert figures["generator"]["name"] == "wrk"
    assert figures["requests"] == 50
    assert figures["ok"] == 30
    assert figures["errors_by_status"] == {"409": 10, "500": 10}
    assert figures["errors_by_code"] == {"409:out_of_stock": 10, "500:?": 10}
    assert figures["sql_queries_per_ok_request"] == round((10 * 0 + 10 * 3 + 10 * 1) / 30, 2)
    assert figures["latency_ms"]["max"] >= SLOW_SECONDS * 1000
    assert figures["no_response"] == 0
    assert figures["generator"]["cpu_seconds"] >= 0
    assert figures["generator"]["connections"] == 5

    monkeypatch.setenv("BENCH_LOAD_GENERATOR", "python")
    python = run_load(base_url, MIX, concurrency=5, duration=60, max_requests=50, idempotency_prefix="p")
    assert python.generator == "python"
    same = summarize(python.records, python.wall)
    for key in ("requests", "ok", "errors_by_status", "errors_by_code", "sql_queries_per_ok_request"):
        assert same[key] == figures[key], key


def test_run_wrk_when_bounded_by_time_on_two_threads_then_nothing_in_flight_is_lost(server):
    base_url, seen = server
    orders = [_order(f"p-{i}", f"token-{i}") for i in range(7)] + [Req("GET", "/slow")]
    run = run_wrk(base_url, orders, concurrency=6, duration=1.0, threads=2, idempotency_prefix="d")
    assert run.threads == 2
    assert run.details["drained"] is True
    # Every request the server saw has its record: none was in flight, unanswered, when the run ended.
    assert len(run.rows) == len(seen.requests) > 0
    assert Counter(status for _, _, status, *_ in run.rows) == {
        201: sum(1 for r in seen.requests if r["method"] == "POST"),
        200: sum(1 for r in seen.requests if r["path"] == "/slow"),
    }
    keys = [r["idempotency_key"] for r in seen.requests if r["method"] == "POST"]
    assert len(set(keys)) == len(keys)
    assert {key.split("-")[1] for key in keys} == {"0", "1"}  # each thread keys its own
    # Thread t sent the requests t, t + 2, …: the slow one (index 7) only from thread 1.
    assert {index for *_, index in run.rows} == set(range(8))


def test_run_wrk_when_the_server_closes_each_connection_then_it_is_reported(server):
    base_url, _ = server
    run = run_wrk(base_url, [Req("GET", "/close"), Req("GET", "/ping")], concurrency=2, duration=60, max_requests=40)
    assert len(run.rows) == 40
    assert run.details["closed_by_server"] == 20


def test_run_wrk_when_an_answer_lacks_the_request_id_then_it_is_counted_as_uncorrelated(server):
    base_url, _ = server
    # One connection: the request an unmatched answer is charged to (the oldest in flight) is its own.
    mix = [Req("GET", "/anonymous"), Req("GET", "/ping")]
    run = run_wrk(base_url, mix, concurrency=1, duration=60, max_requests=20)
    assert len(run.rows) == 20
    assert run.details["uncorrelated_responses"] == 10
    assert run.details["drained"] is True
    assert Counter((index, queries) for _, _, _, queries, _, index in run.rows) == {(0, -1): 10, (1, 0): 10}


def test_chosen_generator_when_wrk_is_not_on_the_path_then_python(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("BENCH_LOAD_GENERATOR", raising=False)
    assert chosen_generator() == "wrk"  # installed here and in CI
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chosen_generator() == "python"
    monkeypatch.setenv("BENCH_LOAD_GENERATOR", "wrk2")
    with pytest.raises(ValueError, match="BENCH_LOAD_GENERATOR"):
        chosen_generator()
