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

Usage: ``python scripts/fake_stripe.py --port 8420 [--from-scratch] [--no-persist]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import signal
import socket
import sys
from pathlib import Path

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
    return parser.parse_args(argv)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
