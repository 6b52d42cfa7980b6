"""The public catalog's response cache: rendered JSON bytes under versioned keys.

Every key embeds one catalog-wide version number, so invalidating every cached
list and detail is a single ``INCR`` of that number: the old keys are never
read again and expire on their own after ``CATALOG_CACHE_TTL``. Writers bump
the version after their transaction commits (``catalog_cache_bump_on_commit``).

Readers fetch the version *before* they query the database, so a body built
from rows read before a commit is stored under the version that the commit's
bump makes obsolete: a buyer never sees a product in stock after it sold out.
Each process holds the version in a ``VersionWatch`` that Redis keeps true with
invalidation messages (client-side caching), so a cached hit makes no round
trip at all; a bump returns only once every watcher has its invalidation.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.db import transaction
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:version"


def _fresh_version() -> int:
    # Random rather than 1: if the version key is ever evicted, a restart at a
    # small number could land on keys a previous generation left behind.
    return secrets.randbelow(1 << 40) + 1


def catalog_version() -> int:
    raw = _read_version()
    if raw is None:
        cache.add(VERSION_KEY, _fresh_version(), timeout=None)
        raw = cache.get(VERSION_KEY)
    return int(raw)


_raw_get: Callable[[], Any] | None = None


def _read_version() -> Any:
    """The version: on Redis from this process's watched copy (no round trip while it holds), else a cache GET."""
    global _raw_get
    if _raw_get is None:
        _raw_get = _raw_reader()
    return _raw_get()


def _raw_reader() -> Callable[[], Any]:
    from django_redis.cache import RedisCache

    if not isinstance(caches["default"], RedisCache):
        return lambda: cache.get(VERSION_KEY)
    from django_redis import get_redis_connection

    return VersionWatch(get_redis_connection("default").connection_pool, cache.make_key(VERSION_KEY)).get


def reset_reader() -> None:
    """Forgets the resolved reader (tests that swap the cache backend)."""
    global _raw_get
    _raw_get = None


def version_watch() -> VersionWatch | None:
    """The watch this process reads the version through, once resolved (None off Redis)."""
    return getattr(_raw_get, "__self__", None)


class VersionWatch:
    """This process's copy of the version, kept true by Redis's invalidation messages (client-side caching).

    One RESP3 connection of its own has ``CLIENT TRACKING ON``: after it reads the key, Redis pushes an
    invalidation down that connection the moment anyone changes it. A read first looks whether anything
    arrived (a poll of the socket, no round trip); anything at all (an invalidation, a flush, a closed
    connection) drops the copy and the key is read again, which also tracks it again. A bump is sent to
    every watcher while the bumping command runs, before its writer even hears back, so a request that
    follows the writer's answer finds the invalidation already waiting (the same ordering Redis gives its
    own client-side caching). On any error the copy is dropped, the connection closed and the caller told,
    so the next read starts over on a new connection (a missed invalidation is never trusted).

    django-redis stores integers unpickled, so the value is the number's digits.
    """

    def __init__(self, pool: Any, key: str) -> None:
        self.pool = pool
        self.key = key
        self.lock = threading.Lock()
        self.connection: Any = None
        self.pid = 0
        self.value: bytes | None = None
        self.reads = 0  # round trips made (tests, the bench's profile)
        self.client_id = 0  # the connection's id at Redis (CLIENT LIST)

    def get(self) -> bytes | None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        with self.lock:
            try:
                return self._get()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self._drop()  # a closed connection (Redis restarted): once more on a new one
            try:
                return self._get()
            except BaseException:
                self._drop()
                raise

    def _get(self) -> bytes | None:
        connection = self._connection()
        while connection.can_read(timeout=0):  # every push means: read again
            connection.read_response(push_request=True)
            self.value = None
        if self.value is None:
            connection.send_command("GET", self.key)
            value = connection.read_response()
            self.reads += 1
            if value is None:  # no version yet: the caller makes one; nothing to keep
                return None
            self.value = bytes(value)
        return self.value

    def _connection(self) -> Any:
        if self.connection is not None and self.pid == os.getpid():
            return self.connection
        self.connection = None  # one inherited across a fork is the parent's: never read from it
        self.value = None
        kwargs = {**self.pool.connection_kwargs, "protocol": 3}
        connection = self.pool.connection_class(**kwargs)
        connection.connect()
        connection.send_command("CLIENT", "SETNAME", "catalog-version-watch")  # for CLIENT LIST
        connection.read_response()
        connection.send_command("CLIENT", "ID")
        self.client_id = int(connection.read_response())
        connection.send_command("CLIENT", "TRACKING", "ON")
        if connection.read_response() not in (b"OK", "OK"):
            raise ConnectionError("Redis refused CLIENT TRACKING")
        self.connection, self.pid = connection, os.getpid()
        return connection

    def close(self) -> None:
        with self.lock:
            self._drop()

    def _drop(self) -> None:
        self.value = None
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()


class _LocalBodies:
    """This process's copy of recently served bodies, keyed by versioned key.

    A body is only ever served when its key's version is the current one, read
    from the shared cache on every request, so a local copy is never stale; it
    saves the second round trip and the unpickling of a large value.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.bodies: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self.lock:
            item = self.bodies.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():  # the same TTL as the shared copy
                del self.bodies[key]
                self.size -= len(item[1])
                return None
            self.bodies.move_to_end(key)
            return item[1]

    def put(self, key: str, body: bytes, ttl: float) -> None:
        if len(body) > self.max_bytes // 8:
            return
        with self.lock:
            if key in self.bodies:
                return
            self.bodies[key] = (time.monotonic() + ttl, body)
            self.size += len(body)
            while self.size > self.max_bytes:
                _, (_, evicted) = self.bodies.popitem(last=False)
                self.size -= len(evicted)

    def clear(self) -> None:
        with self.lock:
            self.bodies.clear()
            self.size = 0


local_bodies = _LocalBodies(max_bytes=32 * 1024 * 1024)


def catalog_cache_bump() -> None:
    """Makes every cached public body obsolete at once (one INCR), and returns only once every process
    watching the version has its invalidation (``VersionWatch``).

    Redis writes the INCR's reply and the watchers' invalidations in the same pass, in no fixed order; a
    second command (PING) is read only after that pass, so when its answer arrives every invalidation
    has left Redis, and a request that follows this writer's answer finds it waiting at its process.
    """
    try:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # no version yet: nothing is cached under one either
            cache.add(VERSION_KEY, _fresh_version(), timeout=None)
        _after_invalidations()
    except Exception:
        logger.exception("catalog cache bump failed; cached bodies expire within the TTL")


def _after_invalidations() -> None:
    from django_redis.cache import RedisCache

    if isinstance(caches["default"], RedisCache):
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()


def catalog_cache_bump_on_commit() -> None:
    """Bumps once the caller's transaction commits (at once outside a transaction)."""
    transaction.on_commit(catalog_cache_bump)


def _key(request: HttpRequest, version: int) -> str:
    """What the body depends on: scheme and host (it holds absolute next/previous links), path, query.

    Read straight from the WSGI environ: CommonMiddleware has already validated
    the host, and the raw forwarded-proto header stands in for ``request.scheme``.
    """
    meta = request.META
    raw = (
        f"{meta.get('wsgi.url_scheme', '')}|{meta.get('HTTP_X_FORWARDED_PROTO', '')}|{meta.get('HTTP_HOST', '')}|"
        f"{request.path}?{meta.get('QUERY_STRING', '')}"
    )
    return f"catalog:{version}:{hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()}"


def _shared_body(stored: object) -> tuple[bytes | None, float]:
    """A body from the shared cache and how long a local copy may live: the shared entry carries its
    expiry (wall clock, as every process reads it), so the copy goes when the shared one does, and a bump
    that failed is still healed within ``CATALOG_CACHE_TTL``. An entry without one: 5 s."""
    if isinstance(stored, tuple):
        expires_at, body = stored
        ttl = min(expires_at - time.time(), settings.CATALOG_CACHE_TTL)
        return (body, ttl) if ttl > 0 else (None, 0.0)
    if isinstance(stored, bytes):
        return stored, min(5, settings.CATALOG_CACHE_TTL)
    return None, 0.0


def cached_public_get(
    view: Callable[..., HttpResponse], build: Callable[..., bytes | None] | None = None
) -> Callable[..., HttpResponse]:
    """Serves GETs of a public catalog view from the cache, before any DRF machinery.

    A hit costs one small cache read (the version) and no SQL. On a miss ``build``
    (if given) makes the 200 body straight from the database, else ``view`` runs;
    only 200 bodies are stored (error bodies carry a per-request id). Other
    methods go straight to ``view``.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "GET":
            return view(request, *args, **kwargs)
        try:
            key = _key(request, catalog_version())
            body = local_bodies.get(key)
            if body is None:
                body, ttl = _shared_body(cache.get(key))
                if body is not None:
                    local_bodies.put(key, body, ttl=ttl)  # no longer than the shared copy lives
        except Exception:
            logger.exception("catalog cache unavailable; serving from the database")
            return view(request, *args, **kwargs)
        if body is not None:
            response = HttpResponse(body, content_type="application/json")
            response["X-Cache"] = "hit"
            return response
        fresh = build(request, *args, **kwargs) if build is not None else None
        if fresh is not None:
            response = HttpResponse(fresh, content_type="application/json")
        else:
            response = view(request, *args, **kwargs)
        if response.status_code == 200:
            render = getattr(response, "render", None)
            if render is not None:
                render()
            try:
                ttl = settings.CATALOG_CACHE_TTL
                cache.set(key, (time.time() + ttl, response.content), ttl)
                local_bodies.put(key, response.content, ttl=ttl)
            except Exception:
                logger.exception("catalog cache write failed")
            response["X-Cache"] = "miss"
        return response

    return wrapper
