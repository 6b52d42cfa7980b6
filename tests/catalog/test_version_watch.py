"""catalog.cache.VersionWatch: the catalog version without a round trip, true on the very next read after a bump."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection

from catalog import cache as catalog_cache
from catalog.cache import VERSION_KEY, VersionWatch, catalog_cache_bump, catalog_version


@pytest.fixture
def watch() -> Any:
    redis = get_redis_connection("default")
    made = VersionWatch(redis.connection_pool, cache.make_key(VERSION_KEY))
    yield made
    made.close()


def _raw() -> Any:
    return get_redis_connection("default")


def test_watch_when_read_again_then_no_round_trip_until_someone_bumps(watch: Any) -> None:
    catalog_version()  # makes the key
    first = watch.get()

    assert [watch.get() for _ in range(50)] == [first] * 50
    assert watch.reads == 1

    catalog_cache_bump()  # another connection (any process) changes it

    assert int(watch.get()) == int(first) + 1
    assert watch.reads == 2


def test_watch_when_bumped_from_another_thread_then_the_next_read_after_the_bump_sees_it(watch: Any) -> None:
    catalog_version()
    seen: list[tuple[int, int]] = []
    for _ in range(1000):
        before = int(watch.get())
        done = threading.Event()

        def bump() -> None:
            catalog_cache_bump()
            done.set()

        threading.Thread(target=bump).start()
        done.wait(5)
        seen.append((before, int(watch.get())))  # read after the bump's answer: never the old value

    assert all(after == before + 1 for before, after in seen)


def test_watch_when_the_database_is_flushed_then_it_reads_again_and_finds_no_version(watch: Any) -> None:
    catalog_version()
    assert watch.get() is not None

    cache.clear()

    assert watch.get() is None


def test_watch_when_redis_drops_its_connection_then_it_reconnects_and_reads_the_current_value(watch: Any) -> None:
    catalog_version()
    watch.get()
    assert _raw().client_kill_filter(_id=watch.client_id) == 1  # as an operator, or a restart, would
    _raw().incr(cache.make_key(VERSION_KEY))

    assert int(watch.get()) == int(_raw().get(cache.make_key(VERSION_KEY)))
    assert watch.reads == 2


def test_watch_when_the_process_forked_then_the_parent_s_connection_is_never_read(watch: Any) -> None:
    catalog_version()
    watch.get()
    parent = watch.connection
    watch.pid = -1  # as in a child after fork

    watch.get()

    assert watch.connection is not parent and watch.reads == 2


@pytest.mark.django_db
def test_catalog_when_served_twice_then_the_second_hit_reads_the_version_from_the_watch(api: Any) -> None:
    catalog_cache.reset_reader()
    api.get("/api/v1/products")  # makes the version (the watch saw none), then the body
    api.get("/api/v1/products")  # reads the new version once
    watching = catalog_cache.version_watch()
    assert watching is not None
    reads_before = watching.reads

    for _ in range(5):
        assert api.get("/api/v1/products")["X-Cache"] == "hit"

    assert catalog_cache.version_watch() is watching and watching.reads == reads_before
