"""The Redis store against a real Valkey with RediSearch: what the shared contract can't cover.

Sharing one index between processes, refusing a mismatched index, key expiry,
both RESP versions, and an outage: Redis down at open, killed mid-run and
restarted empty.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
import redis.asyncio as aioredis

from reprise._exceptions import IndexMismatch, StoreUnavailable
from reprise._protocols import Entry, Vector
from reprise._stores.redis import RedisStore
from reprise.testing import ValkeyServer, free_port

DIMS = 16


def unit(seed: int) -> Vector:
    vector = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return vector / np.linalg.norm(vector)


def entry(entry_id: str, seed: int, partition: str = "p", expires_at: float | None = None) -> Entry:
    return Entry(
        entry_id, partition, f"prompt {entry_id}", f"response {entry_id}", unit(seed),
        created_at=time.time(), expires_at=expires_at,
    )  # fmt: skip


@pytest.fixture
def prefix() -> str:
    return f"e2e:{uuid.uuid4().hex}:"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_store() -> AsyncIterator[Callable[[str, str], RedisStore]]:
    """Stores on a server, closed at the end of the test whatever happened."""
    made: list[RedisStore] = []

    def make(url: str, prefix: str) -> RedisStore:
        made.append(RedisStore(url, prefix=prefix, timeout=5.0))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    """Wait until `check()` is true, retrying through errors; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            if await check():
                return
        except StoreUnavailable:
            pass  # expected while the server is away; anything else fails the test
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.1)


async def test_two_stores_share_one_index(
    make_store: Callable[[str, str], RedisStore], redis_url: str, prefix: str
) -> None:
    writer, reader = make_store(redis_url, prefix), make_store(redis_url, prefix)
    await writer.open(DIMS)
    await reader.open(DIMS)

    await writer.upsert(entry("shared", 1))

    got = await reader.get("shared")
    matches = await reader.search(unit(1), "p", k=3, max_distance=0.1)
    assert got is not None
    assert got.response == "response shared"
    assert [m.entry.id for m in matches] == ["shared"]


async def test_many_stores_racing_to_create_the_index_all_open(
    make_store: Callable[[str, str], RedisStore],
    redis_url: str,
    prefix: str,
    client: aioredis.Redis,
) -> None:
    stores = [make_store(redis_url, prefix) for _ in range(8)]

    await asyncio.gather(*(store.open(DIMS) for store in stores))

    indexes = await client.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
    assert indexes.count((prefix + "idx").encode()) == 1
    await stores[0].upsert(entry("x", 2))
    matches = await stores[-1].search(unit(2), "p", k=1, max_distance=0.1)
    assert [m.entry.id for m in matches] == ["x"]


async def test_an_index_of_another_dimension_is_refused_and_kept(
    make_store: Callable[[str, str], RedisStore], redis_url: str, prefix: str
) -> None:
    original = make_store(redis_url, prefix)
    await original.open(DIMS)
    await original.upsert(entry("kept", 3))

    with pytest.raises(IndexMismatch, match=r"'DIM': 16.*'DIM': 32"):
        await make_store(redis_url, prefix).open(32)

    assert await original.get("kept") is not None
    assert len(await original.search(unit(3), "p", k=1, max_distance=0.1)) == 1


async def test_an_index_of_another_metric_is_refused(
    make_store: Callable[[str, str], RedisStore],
    redis_url: str,
    prefix: str,
    client: aioredis.Redis,
) -> None:
    await client.execute_command(  # type: ignore[no-untyped-call]
        "FT.CREATE", prefix + "idx", "ON", "HASH", "PREFIX", 1, prefix, "SCHEMA",
        "ptag", "TAG", "vector", "VECTOR", "HNSW", 6,
        "TYPE", "FLOAT32", "DIM", DIMS, "DISTANCE_METRIC", "L2",
    )  # fmt: skip

    with pytest.raises(IndexMismatch, match="L2"):
        await make_store(redis_url, prefix).open(DIMS)


async def test_expiry_removes_the_key_and_its_index_entry(
    make_store: Callable[[str, str], RedisStore],
    redis_url: str,
    prefix: str,
    client: aioredis.Redis,
) -> None:
    store = make_store(redis_url, prefix)
    await store.open(DIMS)
    await store.upsert(entry("brief", 4, expires_at=time.time() + 0.3))
    await store.upsert(entry("lasting", 5))
    assert await client.pttl(prefix + "brief") > 0
    assert await client.pttl(prefix + "lasting") == -1  # no expiry

    async def gone() -> bool:
        info = await client.ft(prefix + "idx").info()
        return await client.exists(prefix + "brief") == 0 and int(info["num_docs"]) == 1

    await eventually(gone, within=10)


@pytest.mark.parametrize("protocol", [2, 3])
async def test_both_resp_versions_read_the_same(
    make_store: Callable[[str, str], RedisStore], redis_url: str, prefix: str, protocol: int
) -> None:
    separator = "&" if "?" in redis_url else "?"
    store = make_store(f"{redis_url}{separator}protocol={protocol}", prefix)
    await store.open(DIMS)
    await store.upsert(entry("a", 6))
    await store.upsert(entry("b", 7))

    matches = await store.search(unit(6), "p", k=5, max_distance=2.0)

    assert [m.entry.id for m in matches] == ["a", "b"]
    assert matches[0].distance < 1e-5
    assert await store.clear() == 2


async def test_partitions_with_any_characters_stay_apart(
    make_store: Callable[[str, str], RedisStore], redis_url: str, prefix: str
) -> None:
    store = make_store(redis_url, prefix)
    await store.open(DIMS)
    names = ["a b", "a-b", "{a}", "a|b", "@p:{x}", "ünï", "*", ""]
    for i, name in enumerate(names):
        await store.upsert(entry(f"e{i}", 8, partition=name))

    found = [await store.search(unit(8), name, k=10, max_distance=0.1) for name in names]

    assert [[m.entry.id for m in matches] for matches in found] == [[f"e{i}"] for i in range(8)]
    assert await store.clear("{a}") == 1
    assert await store.clear() == 7


async def test_redis_down_at_open_then_caching_starts_when_it_comes_up() -> None:
    server = ValkeyServer(free_port())
    store = RedisStore(server.url, prefix="late:", timeout=0.5)

    with pytest.raises(StoreUnavailable):
        await store.open(DIMS)
    with pytest.raises(StoreUnavailable):  # fails fast inside the back-off window
        await store.get("anything")

    server.start()
    try:
        await eventually(lambda: _roundtrip(store, "after-start"))
    finally:
        await store.aclose()
        server.close()


async def test_a_redis_that_never_answers_costs_one_timeout_then_fails_fast() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.2)

        with pytest.raises(StoreUnavailable, match="unreachable"):
            await asyncio.wait_for(store.open(DIMS), 10)
        with pytest.raises(StoreUnavailable, match="next attempt"):  # no network wait
            await asyncio.wait_for(store.get("x"), 10)
        await store.aclose()


async def test_redis_killed_and_restarted_fails_fast_then_recovers(
    restartable_redis: ValkeyServer,
) -> None:
    store = RedisStore(restartable_redis.url, prefix="outage:", timeout=0.5)
    await store.open(DIMS)
    assert await _roundtrip(store, "before")

    restartable_redis.kill()
    for _ in range(5):  # each call fails well inside its bound, by timeout or back-off
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.search(unit(1), "p", k=1, max_distance=0.5), 5)

    restartable_redis.start()  # empty: no data, no index
    await eventually(lambda: _roundtrip(store, "after"))
    assert await store.get("before") is None
    await store.aclose()


async def test_a_restart_between_calls_recreates_the_index(
    restartable_redis: ValkeyServer,
) -> None:
    store = RedisStore(restartable_redis.url, prefix="quiet:", timeout=2.0)
    await store.open(DIMS)
    assert await _roundtrip(store, "before")

    restartable_redis.stop()  # no call fails while it is away: the store can't notice
    restartable_redis.start()

    assert await store.search(unit(1), "p", k=1, max_distance=0.5) == []
    assert await _roundtrip(store, "after")
    await store.aclose()


async def _roundtrip(store: RedisStore, entry_id: str) -> bool:
    await store.upsert(entry(entry_id, 9))
    matches = await store.search(unit(9), "p", k=1, max_distance=0.1)
    return [m.entry.id for m in matches] == [entry_id]
