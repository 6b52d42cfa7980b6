"""A small asyncio TCP fault proxy of our own: between the platform and the fake Stripe server it passes,
delays, resets, answers 500 or hangs each HTTP request, on command or at random (the chaos bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

FAULTS = ("pass", "delay", "reset", "500", "hang")
_METHODS = (b"GET ", b"POST ", b"DELETE ", b"PUT ", b"PATCH ", b"HEAD ")
_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b'Content-Length: 59\r\n\r\n{"error": {"type": "api_error", "message": "fault proxy 500"}}'
)


@dataclass
class FaultProxy:
    """``127.0.0.1:<port>`` → ``upstream``. ``mode`` applies to every new request; ``chaos(rate, faults)`` picks
    a fault at random for ``rate`` of them. ``delay`` waits ``delay_seconds`` before forwarding; ``reset`` closes
    both sides with an RST after forwarding the request (Stripe may have acted on it: the reply is lost);
    ``500`` answers itself; ``hang`` never answers. Counts what it did in ``seen``. Runs in a daemon thread.
    """

    upstream_host: str
    upstream_port: int
    mode: str = "pass"
    delay_seconds: float = 2.0
    rate: float = 0.0
    chaos_faults: tuple[str, ...] = ()
    seen: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.base_events.Server | None = None
    _random: random.Random = field(default_factory=lambda: random.Random(15))

    def start(self) -> FaultProxy:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            loop.run_forever()

        threading.Thread(target=run, name="fault-proxy", daemon=True).start()
        assert started.wait(10), "the fault proxy did not start"
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, mode: str, *, delay_seconds: float | None = None) -> None:
        assert mode in FAULTS, mode
        if delay_seconds is not None:
            self.delay_seconds = delay_seconds
        self.mode, self.rate = mode, 0.0

    def chaos(self, rate: float, faults: tuple[str, ...] = ("delay", "reset")) -> None:
        self.mode, self.rate, self.chaos_faults = "pass", rate, faults

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def close() -> None:
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_later(0.05, loop.stop)

        loop.call_soon_threadsafe(close)

    def _pick(self) -> str:
        if self.rate and self._random.random() < self.rate:
            return self._random.choice(self.chaos_faults)
        return self.mode

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        pump: asyncio.Task[None] | None = None
        try:
            while chunk := await client_r.read(65536):
                fault = self._pick() if chunk.startswith(_METHODS) else "pass"
                self.seen[fault] += chunk.startswith(_METHODS)
                if fault == "500":
                    client_w.write(_ERROR)
                    await client_w.drain()
                    return
                if fault == "hang":
                    await asyncio.sleep(3600)
                    return
                if fault == "delay":
                    await asyncio.sleep(self.delay_seconds)
                if fault == "reset":  # Stripe gets the request (and acts on it) on a side connection; its reply is lost
                    chunk = await _whole_request(chunk, client_r)
                    side_r, side_w = await asyncio.open_connection(self.upstream_host, self.upstream_port)
                    side_w.write(chunk)
                    await side_w.drain()
                    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                        await asyncio.wait_for(side_r.read(65536), 5)
                    side_w.close()
                    _rst(client_w)
                    return
                if upstream is None:
                    upstream = await asyncio.open_connection(self.upstream_host, self.upstream_port)
                    pump = asyncio.create_task(_pump(upstream[0], client_w))
                upstream[1].write(chunk)
                await upstream[1].drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if pump is not None:
                pump.cancel()
            for writer in (client_w, upstream[1] if upstream else None):
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()


async def _whole_request(chunk: bytes, reader: asyncio.StreamReader) -> bytes:
    """The rest of the HTTP request ``chunk`` begins (its headers, then Content-Length bytes of body): a client
    may send the body in a later packet, and Stripe acts only on a whole request."""
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        while b"\r\n\r\n" not in chunk:
            more = await asyncio.wait_for(reader.read(65536), 5)
            if not more:
                return chunk
            chunk += more
        head, _, body = chunk.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        if len(body) < length:
            chunk += await asyncio.wait_for(reader.readexactly(length - len(body)), 5)
    return chunk


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Closes with SO_LINGER 0: the peer sees ECONNRESET, not an orderly end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
