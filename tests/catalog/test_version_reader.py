"""The bare version read against a tiny RESP server (the cache-hit path's only network call)."""

from __future__ import annotations

import socket
import threading

import pytest

from catalog.version_reader import RawGet, VersionReadError


class FakeRedis:
    """Answers AUTH/SELECT with +OK and GET from ``values``; records every command."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.commands: list[list[bytes]] = []
        self.drop_next = False
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn:
            while True:
                header = reader.readline()
                if not header:
                    return
                parts = []
                for _ in range(int(header[1:])):
                    length = int(reader.readline()[1:])
                    parts.append(reader.read(length + 2)[:-2])
                self.commands.append(parts)
                if self.drop_next:
                    self.drop_next = False
                    return
                if parts[0] in (b"AUTH", b"SELECT"):
                    conn.sendall(b"+OK\r\n")
                elif parts[0] == b"GET":
                    value = self.values.get(parts[1])
                    conn.sendall(b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value))
                else:
                    conn.sendall(b"-ERR unknown\r\n")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake_redis():
    server = FakeRedis()
    yield server
    server.close()


def test_raw_get_when_key_set_then_value_and_when_missing_then_none(fake_redis):
    reader = RawGet(f"redis://127.0.0.1:{fake_redis.port}/2", "pp:1:catalog:version")

    assert reader.get() is None
    fake_redis.values[b"pp:1:catalog:version"] = b"123456789"
    assert reader.get() == b"123456789"
    assert fake_redis.commands[0] == [b"SELECT", b"2"]
    assert fake_redis.commands[1:] == [[b"GET", b"pp:1:catalog:version"]] * 2


def test_raw_get_when_url_has_credentials_then_authenticates_first(fake_redis):
    reader = RawGet(f"redis://app:s%40cret@127.0.0.1:{fake_redis.port}/0", "k")

    reader.get()

    assert fake_redis.commands == [[b"AUTH", b"app", b"s@cret"], [b"GET", b"k"]]


def test_raw_get_when_connection_dropped_then_error_once_and_reconnects(fake_redis):
    fake_redis.values[b"k"] = b"7"
    reader = RawGet(f"redis://127.0.0.1:{fake_redis.port}", "k")
    assert reader.get() == b"7"
    fake_redis.drop_next = True

    with pytest.raises(VersionReadError):
        reader.get()

    assert reader.get() == b"7"


def test_raw_get_when_threads_then_each_has_its_own_connection(fake_redis):
    fake_redis.values[b"k"] = b"42"
    reader = RawGet(f"redis://127.0.0.1:{fake_redis.port}", "k")
    results = []

    threads = [threading.Thread(target=lambda: results.append([reader.get() for _ in range(50)])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert results == [[b"42"] * 50] * 4


@pytest.mark.parametrize("url", ["rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock"])
def test_raw_get_when_tls_or_unix_socket_then_refused_for_the_regular_client(url):
    with pytest.raises(VersionReadError):
        RawGet(url, "k")


def test_raw_get_when_server_unreachable_then_error():
    with socket.socket() as unused:  # a free port that nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    reader = RawGet(f"redis://127.0.0.1:{port}", "k", timeout=0.5)

    with pytest.raises(VersionReadError):
        reader.get()
