"""A bare Redis ``GET`` of one key for the catalog's cache-hit path.

The catalog version is read on every public GET. redis-py spends ~90 µs of
CPU on one command (connection pool, health checks, retries, parsing); this
sends the same RESP request on a per-thread socket and parses the one reply
shape it can get, for ~10 µs. Anything unusual (TLS, unix sockets, a reply it
does not understand, a broken socket) raises ``VersionReadError`` and the
caller falls back to the regular client.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import unquote, urlsplit


class VersionReadError(Exception):
    pass


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RawGet:
    """Reads one key; thread-safe (a socket per thread) and fork-safe (a socket per process)."""

    def __init__(self, url: str, key: str, timeout: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise VersionReadError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self.address = (parts.hostname, parts.port or 6379)
        self.timeout = timeout
        self.setup: list[bytes] = []
        if parts.password:
            credentials = [unquote(parts.password).encode()]
            if parts.username:
                credentials.insert(0, unquote(parts.username).encode())
            self.setup.append(_command(b"AUTH", *credentials))
        db = (parts.path or "/").lstrip("/") or "0"
        if db != "0":
            self.setup.append(_command(b"SELECT", db.encode()))
        self.request = _command(b"GET", key.encode())
        self.local = threading.local()

    def _socket(self) -> socket.socket:
        sock: socket.socket | None = getattr(self.local, "sock", None)
        if sock is not None and self.local.pid == os.getpid():
            return sock
        sock = socket.create_connection(self.address, timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for command in self.setup:
                sock.sendall(command)
                if not self._read_reply(sock).startswith(b"+OK"):
                    raise VersionReadError("Redis refused the connection setup")
        except BaseException:
            sock.close()
            raise
        self.local.sock = sock
        self.local.pid = os.getpid()
        return sock

    @staticmethod
    def _read_reply(sock: socket.socket) -> bytes:
        """One whole reply: a status line, an error, or a bulk string (possibly nil)."""
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise VersionReadError("Redis closed the connection")
            data += chunk
        head, _, rest = data.partition(b"\r\n")
        if head[:1] in (b"+", b"-"):
            return data
        if head[:1] != b"$":
            raise VersionReadError(f"unexpected Redis reply {head[:20]!r}")
        length = int(head[1:])
        if length < 0:
            return b"$-1"
        while len(rest) < length + 2:
            chunk = sock.recv(4096)
            if not chunk:
                raise VersionReadError("Redis closed the connection")
            rest += chunk
        return b"$" + rest[:length]

    def get(self) -> bytes | None:
        """The key's raw value, None when it does not exist. Raises VersionReadError."""
        try:
            sock = self._socket()
            sock.sendall(self.request)
            reply = self._read_reply(sock)
        except (OSError, ValueError, VersionReadError) as exc:
            self.close()
            raise VersionReadError(str(exc)) from exc
        if reply == b"$-1":
            return None
        if not reply.startswith(b"$"):
            self.close()
            raise VersionReadError(f"Redis answered {reply[:60]!r}")
        return reply[1:]

    def close(self) -> None:
        sock = getattr(self.local, "sock", None)
        self.local.sock = None
        if sock is not None:
            sock.close()
