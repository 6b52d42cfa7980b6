"""The public catalog's response cache: rendered JSON bytes under versioned keys.

Every key embeds one catalog-wide version number, so invalidating every cached
list and detail is a single ``INCR`` of that number: the old keys are never
read again and expire on their own after ``CATALOG_CACHE_TTL``. Writers bump
the version after their transaction commits (``catalog_cache_bump_on_commit``).

Readers fetch the version *before* they query the database, so a body built
from rows read before a commit is stored under the version that the commit's
bump makes obsolete: a buyer never sees a product in stock after it sold out.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:version"


def _fresh_version() -> int:
    # Random rather than 1: if the version key is ever evicted, a restart at a
    # small number could land on keys a previous generation left behind.
    return secrets.randbelow(1 << 40) + 1


def catalog_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, _fresh_version(), timeout=None)
        version = cache.get(VERSION_KEY)
    return int(version)


def catalog_cache_bump() -> None:
    """Makes every cached public body obsolete at once (one INCR)."""
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # no version yet: nothing is cached under one either
        cache.add(VERSION_KEY, _fresh_version(), timeout=None)
    except Exception:
        logger.exception("catalog cache bump failed; cached bodies expire within the TTL")


def catalog_cache_bump_on_commit() -> None:
    """Bumps once the caller's transaction commits (at once outside a transaction)."""
    transaction.on_commit(catalog_cache_bump)


def _key(request: HttpRequest, version: int) -> str:
    # The body holds absolute next/previous links, so scheme and host are part of it.
    raw = f"{request.scheme}://{request.get_host()}{request.get_full_path()}"
    digest = hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
    return f"catalog:{version}:{digest}"


def cached_public_get(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serves GETs of a public catalog view from the cache, before any DRF machinery.

    A hit costs two cache reads and no SQL. Only 200 responses are stored (error
    bodies carry a per-request id). Other methods go straight to ``view``.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "GET":
            return view(request, *args, **kwargs)
        try:
            key = _key(request, catalog_version())
            body = cache.get(key)
        except Exception:
            logger.exception("catalog cache unavailable; serving from the database")
            return view(request, *args, **kwargs)
        if body is not None:
            response = HttpResponse(body, content_type="application/json")
            response["X-Cache"] = "hit"
            return response
        response = view(request, *args, **kwargs)
        if response.status_code == 200:
            render = getattr(response, "render", None)
            if render is not None:
                render()
            try:
                cache.set(key, response.content, settings.CATALOG_CACHE_TTL)
            except Exception:
                logger.exception("catalog cache write failed")
            response["X-Cache"] = "miss"
        return response

    return wrapper
