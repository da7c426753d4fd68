"""The Redis store's near cache against a real Valkey: served from memory only while correct.

Every change to a key by anyone else (an overwrite, a delete, a purge, a flush,
a mark of feedback, an expiry) must drop the copy; a lost or silent
invalidation connection must empty and bypass it; the entry's TTL holds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from reprise import SemanticCache, ThresholdVerifier
from reprise._protocols import Entry, Vector
from reprise._stores.redis import RedisStore
from reprise._stores.redis_near import NearCache, entry_bytes

DIMS = 16


def unit(seed: int) -> Vector:
    vector = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return vector / np.linalg.norm(vector)


def entry(
    entry_id: str, response: str = "first", *, expires_at: float | None = None, seed: int = 1
) -> Entry:
    return Entry(
        entry_id, "p", f"prompt {entry_id}", response, unit(seed),
        created_at=time.time(), expires_at=expires_at,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> str:
    return f"near:{uuid.uuid4().hex}:"


@pytest.fixture
async def make_store(redis_url: str, prefix: str) -> AsyncIterator[Callable[..., RedisStore]]:
    """Opened stores on the test's prefix, closed at the end whatever happened."""
    made: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        made.append(RedisStore(redis_url, prefix=prefix, timeout=5.0, **options))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()


def raw(store: RedisStore) -> aioredis.Redis:
    """A plain redis-py client on the store's server (its own, not a store's path)."""
    return store._client


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


def near(store: RedisStore) -> NearCache:
    assert store._near is not None
    return store._near


async def opened(store: RedisStore) -> RedisStore:
    await store.open(DIMS)
    await eventually(lambda: near(store).serving)
    return store


def count_reads(store: RedisStore) -> list[tuple[Any, ...]]:
    """The commands the store sends by its direct path (HMGET, FT.SEARCH) from now on."""
    sent: list[tuple[Any, ...]] = []
    execute = store._direct.execute

    async def counted(*args: Any) -> Any:
        sent.append(args)
        return await execute(*args)

    store._direct.execute = counted  # type: ignore[method-assign]
    return sent


async def test_a_repeat_is_served_from_memory(make_store: Callable[..., RedisStore]) -> None:
    reader, writer = await opened(make_store()), await opened(make_store())
    await writer.upsert(entry("a"))
    reads = count_reads(reader)

    got = [await reader.get("a") for _ in range(3)]

    assert all(found is not None for found in got)
    second = got[1]
    assert second is not None
    assert second.response == "first"
    assert second.vector is not None
    assert [args[0] for args in reads] == ["HMGET"]  # one read, then memory
    assert await reader.get("missing") is None  # a miss is never remembered
    assert await reader.get("missing") is None
    assert [args[0] for args in reads] == ["HMGET"] * 3


async def test_what_a_store_writes_it_reads_back_once(
    make_store: Callable[..., RedisStore],
) -> None:
    store = await opened(make_store())
    reads = count_reads(store)

    for name in "abcde":
        await store.upsert(entry(name))

    assert [args[0] for args in reads] == ["HMGET"] * 5  # a read-back after each write
    # Kept unless the write's own invalidation overtook its read-back (then read again).
    assert near(store).size >= 1
    assert (await store.get("a")).response == "first"  # type: ignore[union-attr]


async def test_an_overwrite_by_another_replica_drops_the_copy(
    make_store: Callable[..., RedisStore],
) -> None:
    reader, writer = await opened(make_store()), await opened(make_store())
    await writer.upsert(entry("a", "first"))
    assert (await reader.get("a")).response == "first"  # type: ignore[union-attr]

    await writer.upsert(entry("a", "second"))

    await eventually(lambda: near(reader).size == 0)
    assert (await reader.get("a")).response == "second"  # type: ignore[union-attr]


async def test_a_delete_purge_or_flush_by_another_client_drops_copies(
    make_store: Callable[..., RedisStore], prefix: str
) -> None:
    reader, writer = await opened(make_store()), await opened(make_store())
    client = raw(writer)
    for name in ("a", "b", "c"):
        await writer.upsert(entry(name))
        assert await reader.get(name) is not None
    assert near(reader).size == 3

    await client.delete(prefix + "a")  # a plain client, not a store
    await eventually(lambda: near(reader).size == 2)
    assert await reader.get("a") is None

    assert await writer.clear("p") == 2  # the purge: FT.SEARCH, then UNLINK
    await eventually(lambda: near(reader).size == 0)
    assert await reader.get("b") is None

    await writer.upsert(entry("d"))
    assert await reader.get("d") is not None
    await client.flushdb()
    await eventually(lambda: near(reader).size == 0)
    assert await reader.get("d") is None


async def test_a_mark_of_feedback_by_another_replica_reaches_the_exact_tier(
    redis_url: str, prefix: str
) -> None:
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={prefix}&timeout=5"
    one = SemanticCache(store=url, verifier=ThresholdVerifier(), score_threshold=0.2, ttl=60)
    two = SemanticCache(store=url, verifier=ThresholdVerifier(), score_threshold=0.2, ttl=60)
    question, reworded = "How far is the Moon from the Earth?", "How far away is the Moon?"
    async with one, two:
        await eventually(lambda: near(one.vector_store).serving)  # type: ignore[arg-type]
        entry_id = await one.store(question, "384,400 km", "team")
        assert (await one.lookup(question, "team")) is not None  # now a copy in `one`

        assert await two.mark_wrong(entry_id, reworded) is True  # another replica's feedback
        await eventually(lambda: near(one.vector_store).size == 0)  # type: ignore[arg-type]
        marked = await one.vector_store.get(entry_id)
        assert marked is not None
        assert "rejected" in marked.meta

        assert await two.mark_wrong(entry_id, question) is True  # wrong for its own question
        await eventually(lambda: near(one.vector_store).size == 0)  # type: ignore[arg-type]
        assert await one.lookup(question, "team") is None


async def test_own_writes_drop_the_copy_at_once(make_store: Callable[..., RedisStore]) -> None:
    store = await opened(make_store())
    await store.upsert(entry("a", "first"))
    assert await store.get("a") is not None

    await store.upsert(entry("a", "second"))
    assert (await store.get("a")).response == "second"  # type: ignore[union-attr]
    assert await store.delete("a") is True
    assert await store.get("a") is None


async def test_the_entry_ttl_holds_for_copies(make_store: Callable[..., RedisStore]) -> None:
    clock = Clock()
    store = await opened(make_store(clock=clock))
    await store.upsert(entry("brief", expires_at=clock.now + 60))
    assert await store.get("brief") is not None
    assert near(store).size == 1

    clock.now += 61  # past its deadline by the store's clock, still in Redis

    assert await store.get("brief") is None
    assert near(store).size == 0


async def test_an_expiry_in_redis_drops_the_copy(make_store: Callable[..., RedisStore]) -> None:
    store = await opened(make_store())
    await store.upsert(entry("brief", expires_at=time.time() + 0.5))
    assert await store.get("brief") is not None

    await eventually(lambda: near(store).size == 0, within=5)
    assert await store.get("brief") is None


async def test_a_lost_invalidation_connection_empties_and_bypasses_it(
    make_store: Callable[..., RedisStore],
) -> None:
    store = await opened(make_store())
    client = raw(make_store(near_cache=0))
    await store.upsert(entry("a"))
    assert await store.get("a") is not None
    assert near(store).size == 1

    await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]

    await eventually(lambda: not near(store).serving)
    assert near(store).size == 0
    reads = count_reads(store)
    assert await store.get("a") is not None  # from Redis, and not kept meanwhile
    assert reads
    await eventually(lambda: near(store).serving)  # back by itself
    assert await store.get("a") is not None
    assert await store.get("a") is not None
    assert len(reads) == 2


async def test_a_silent_invalidation_connection_is_not_trusted(
    make_store: Callable[..., RedisStore],
) -> None:
    store = make_store()
    client = raw(make_store(near_cache=0))
    near(store).lease = 0.6
    await opened(store)
    await store.upsert(entry("a"))
    assert await store.get("a") is not None

    # The server answers nobody (the PINGs too) for longer than the lease.
    await client.execute_command("CLIENT", "PAUSE", 1500, "ALL")  # type: ignore[no-untyped-call]
    await asyncio.sleep(0.8)

    assert not near(store).serving
    assert near(store).get("a") is None
    assert near(store).size == 0
    await eventually(lambda: near(store).serving)


async def test_a_server_refusing_tracking_leaves_it_off(
    make_store: Callable[..., RedisStore], redis_url: str, prefix: str
) -> None:
    client = raw(make_store(near_cache=0))
    user = f"u{uuid.uuid4().hex[:8]}"
    await client.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-client"
    )
    url = redis_url.replace("redis://", f"redis://{user}:pw@")
    store = RedisStore(url, prefix=prefix, timeout=5.0)
    try:
        await store.open(DIMS)
        await store.upsert(entry("a"))
        await asyncio.sleep(0.3)
        assert await store.get("a") is not None
        assert await store.get("a") is not None
        assert not near(store).serving
        assert near(store).size == 0
    finally:
        await store.aclose()
        await client.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]


async def test_turned_off_by_the_url(redis_url: str, prefix: str) -> None:
    separator = "&" if "?" in redis_url else "?"
    store = RedisStore(f"{redis_url}{separator}near_cache=0", prefix=prefix, timeout=5.0)
    try:
        await store.open(DIMS)
        await store.upsert(entry("a"))
        reads = count_reads(store)
        assert await store.get("a") is not None
        assert await store.get("a") is not None
        assert store._near is None
        assert len(reads) == 2
    finally:
        await store.aclose()


# -- the bookkeeping itself, on a cache that is told it is subscribed


def subscribed(**options: Any) -> NearCache:
    cache = NearCache(aioredis.ConnectionPool(), "p:", **options)
    cache._subscribed, cache._heard = True, time.monotonic() + 3600
    return cache


def test_a_read_overtaken_by_an_invalidation_is_not_kept() -> None:
    cache = subscribed()
    token = cache.begin("a")
    cache._handle([b"message", b"__redis__:invalidate", [b"p:a"]])  # while the reply is under way
    cache.end("a", token, entry("a"))
    assert cache.get("a") is None

    token = cache.begin("a")
    cache.clear()  # a reconnect, or a flush
    cache.end("a", token, entry("a"))
    assert cache.get("a") is None

    token = cache.begin("a")
    cache.end("a", token, entry("a"))
    assert cache.get("a") is not None


def test_nothing_is_kept_or_served_unless_subscribed() -> None:
    cache = NearCache(aioredis.ConnectionPool(), "p:")
    assert cache.begin("a") is None
    cache.end("a", None, entry("a"))
    assert cache.size == 0


def test_copies_are_bounded_by_count_and_bytes() -> None:
    cache = subscribed(max_entries=2)
    for name in ("a", "b", "c"):
        cache.end(name, cache.begin(name), entry(name))
    assert (cache.get("a"), cache.size) == (None, 2)  # the least recently used went

    first, second = cache.begin("b"), cache.begin("b")  # two reads of one key at once
    cache.end("b", first, entry("b", "newer"))
    cache.end("b", second, entry("b", "newer"))  # the first one's copy overtakes nothing
    assert (cache.get("b").response, cache.size) == ("newer", 2)  # type: ignore[union-attr]
    assert (cache._reading, cache._overtaken) == ({}, set())  # nothing left behind

    one = entry_bytes(entry("a"))
    cache = subscribed(max_bytes=2 * one + 10)
    for name in ("a", "b", "c"):
        cache.end(name, cache.begin(name), entry(name))
    assert cache.size == 2
    assert cache.bytes <= 2 * one + 10
