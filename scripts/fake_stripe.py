"""Runs the local fake Stripe server (localstripe) on 127.0.0.1.

localstripe is GPL-3.0: it runs here, in its own process, and no platform
package ever imports it. This wrapper changes only how it is started:

* it listens on 127.0.0.1 (localstripe's own CLI listens on every interface);
* its state lives in the project's ignored ``var/`` folder instead of
  ``/tmp/localstripe.pickle``, written at most once a second (localstripe
  pickles the whole store on every write, which gets slow), or not at all
  with ``--no-persist``;
* with ``--parent-pid`` it stops by itself once that process is gone, and with
  ``--max-lifetime`` after that many seconds, so a test run never leaves it behind.

It also adds two of Stripe's behaviours localstripe lacks, which the platform relies on:

* idempotent requests: a POST with an ``Idempotency-Key`` seen before (same API key) answers the saved
  response again (``Idempotent-Replayed: true``) without running twice; the same key with other parameters
  or on another path is a 400 ``idempotency_error``, and one still running a 409. As at Stripe, only
  responses of requests that ran are saved (2xx and card errors, 402), for ``--idempotency-ttl`` seconds
  (24 h); ``DELETE /_config/data`` forgets them with the rest of the state;
* ``GET /v1/payment_intents/search`` for queries of ``metadata['key']:'value'`` clauses joined by ``AND``.

And it lists no refunds for a PaymentIntent that has no charge (never confirmed, canceled) where
localstripe answers 500 (it reads the charge's id from None).

Usage: ``python scripts/fake_stripe.py --port 8420 [--from-scratch] [--no-persist]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = BASE_DIR / "var" / "fake_stripe"


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--from-scratch", action="store_true", help="ignore the saved state")
    parser.add_argument("--no-persist", action="store_true", help="keep state in memory only")
    parser.add_argument("--parent-pid", type=int, default=0, help="stop when this process is gone")
    parser.add_argument("--max-lifetime", type=float, default=0, help="stop after this many seconds (0: never)")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    parser.add_argument("--idempotency-ttl", type=float, default=24 * 3600, help="seconds a saved response is kept")
    return parser.parse_args(argv)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Saved:
    """One idempotent request: what it asked (method, path, body) and, once it ran, what it answered."""

    asked: tuple[str, str, bytes]
    at: float
    answer: tuple[int, bytes, str] | None = None


def _error(status: int, message: str, code: str = "") -> Any:
    from aiohttp import web

    error = {"type": "idempotency_error", "message": message, **({"code": code} if code else {})}
    return web.json_response({"error": error}, status=status)


def idempotency_middleware(ttl: float) -> Any:
    """Stripe's idempotent requests in front of localstripe (which ignores the header)."""
    from aiohttp import web

    saved: dict[tuple[str, str], _Saved] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "DELETE" and request.path == "/_config/data":
            saved.clear()
            return await handler(request)
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or request.path.startswith("/_config/"):
            return await handler(request)
        now = time.monotonic()
        while saved and now - next(iter(saved.values())).at > ttl:  # the dict keeps them in the order they came
            del saved[next(iter(saved))]
        scope = (request.headers.get("Authorization", ""), key)
        asked = (request.method, request.path, await request.read())
        seen = saved.get(scope)
        if seen is not None and seen.asked != asked:
            return _error(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            )
        if seen is not None and seen.answer is None:
            return _error(409, "Another request with this idempotency key is still running.", "idempotency_key_in_use")
        if seen is not None and seen.answer is not None:
            status, body, content_type = seen.answer
            return web.Response(
                status=status, body=body, content_type=content_type, headers={"Idempotent-Replayed": "true"}
            )
        saved[scope] = entry = _Saved(asked=asked, at=now)
        try:
            response = await handler(request)
        except BaseException:
            del saved[scope]
            raise
        answered = getattr(response, "body", None)
        if (200 <= response.status < 300 or response.status == 402) and isinstance(answered, bytes):
            entry.answer = (response.status, answered, response.content_type)
        else:  # it did not run (validation, conflict) or failed inside: a retry runs it
            del saved[scope]
        return response

    return middleware


_CLAUSE = re.compile(r"^metadata\[['\"]([^'\"]+)['\"]\]\s*:\s*['\"]([^'\"]*)['\"]$")


def search_middleware() -> Any:
    """``GET /v1/payment_intents/search``: metadata clauses only, every match on one page."""
    from aiohttp import web
    from localstripe import resources

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "GET" or request.path != "/v1/payment_intents/search":
            return await handler(request)
        wanted: dict[str, str] = {}
        for clause in re.split(r"\s+AND\s+", request.query.get("query", "").strip()):
            match = _CLAUSE.match(clause.strip())
            if match is None:
                return web.json_response(
                    {"error": {"type": "invalid_request_error", "message": f"Unsupported search clause: {clause}"}},
                    status=400,
                )
            wanted[match.group(1)] = match.group(2)
        found = [
            intent._export()  # noqa: SLF001 - localstripe's own serialisation
            for name, intent in list(resources.store.items())
            if name.startswith("payment_intent:")
            and all((intent.metadata or {}).get(k) == v for k, v in wanted.items())
        ]
        found.sort(key=lambda intent: -int(intent.get("created") or 0))
        return web.json_response(
            {"object": "search_result", "url": request.path, "data": found, "has_more": False, "next_page": None}
        )

    return middleware


def _patch_refund_list(resources: Any) -> None:
    """``GET /v1/refunds?payment_intent=`` of an intent without a charge: an empty list, as at Stripe."""
    listed = resources.Refund._api_list_all.__func__  # noqa: SLF001 - the method patched here

    def refunds_list(cls: Any, url: str, charge: Any = None, payment_intent: Any = None, **kwargs: Any) -> Any:
        if charge is None and isinstance(payment_intent, str) and payment_intent.startswith("pi_"):
            intent = resources.PaymentIntent._api_retrieve(payment_intent)  # noqa: SLF001 - 404 when unknown
            if intent.latest_charge is None:
                return resources.List(url, limit=kwargs.get("limit"), starting_after=kwargs.get("starting_after"))
        return listed(cls, url, charge=charge, payment_intent=payment_intent, **kwargs)

    resources.Refund._api_list_all = classmethod(refunds_list)  # noqa: SLF001


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)

    from aiohttp import web
    from localstripe import resources, server

    store = resources.store
    state_file = args.state_dir / f"localstripe-{args.port}.pickle"
    dirty = {"flag": False}

    def load() -> None:
        if args.no_persist or args.from_scratch or not state_file.exists():
            return
        with state_file.open("rb") as f:
            old = pickle.load(f)  # noqa: S301 - our own file, written by this script
        dict.clear(store)
        dict.update(store, old)

    def dump() -> None:
        if args.no_persist:
            return
        args.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_file.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state_file)
        dirty["flag"] = False

    def mark_dirty(self: object = None) -> None:
        dirty["flag"] = True

    # Replace localstripe's write-through pickling of /tmp with ours.
    resources.Store.dump_to_disk = mark_dirty
    resources.Store.try_load_from_disk = lambda self: load()
    _patch_refund_list(resources)
    load()

    loop_start = {"t": 0.0}

    async def housekeeping(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop_start["t"] = loop.time()
        while True:
            await asyncio.sleep(1.0)
            if dirty["flag"]:
                dump()
            if args.parent_pid and not _alive(args.parent_pid):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if args.max_lifetime and loop.time() - loop_start["t"] > args.max_lifetime:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    async def start_housekeeping(app: web.Application) -> None:
        app["housekeeping"] = asyncio.ensure_future(housekeeping(app))

    async def stop_housekeeping(app: web.Application) -> None:
        app["housekeeping"].cancel()
        if dirty["flag"]:
            dump()

    app = server.app
    # Outermost, so they see localstripe's answers (its errors included) as responses.
    app.middlewares.insert(0, search_middleware())
    app.middlewares.insert(0, idempotency_middleware(args.idempotency_ttl))
    app.on_startup.append(start_housekeeping)
    app.on_cleanup.append(stop_housekeeping)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host if args.host != "localhost" else "127.0.0.1", args.port))

    access_log = logging.getLogger("aiohttp.access")
    if args.quiet:
        access_log.disabled = True
    else:
        access_log.setLevel(logging.INFO)
        access_log.addHandler(logging.StreamHandler())
    sys.stdout.write(f"fake Stripe (localstripe) listening on http://{args.host}:{args.port}\n")
    sys.stdout.flush()
    web.run_app(app, sock=sock, access_log=None if args.quiet else access_log, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
