"""Redis under `maxmemory` with an LRU policy: the store tolerates keys evicted under it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
import redis.asyncio as aioredis

from reprise._protocols import Entry
from reprise._stores.redis import RedisStore, _pairs
from reprise.testing import ValkeyServer

DIMS = 384


def vector(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    v = rng.standard_normal(DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def small_redis() -> Iterator[ValkeyServer]:
    server = ValkeyServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def store(small_redis: ValkeyServer) -> AsyncIterator[RedisStore]:
    admin = aioredis.Redis.from_url(small_redis.url)
    await admin.config_set("maxmemory-policy", "allkeys-lru")
    # Just above what the server and the empty index use: a few hundred entries fit.
    used = int((await admin.info("memory"))["used_memory"])
    await admin.config_set("maxmemory", str(used + 2_000_000))
    await admin.aclose()
    store = RedisStore(small_redis.url, timeout=5.0)
    await store.open(DIMS)
    yield store
    await store.aclose()


async def test_entries_evicted_by_redis_are_skipped_and_the_index_stays_consistent(
    store: RedisStore, small_redis: ValkeyServer
) -> None:
    response = "x" * 2000
    for i in range(3000):
        await store.upsert(Entry(f"e{i}", "p", f"prompt {i}", response, vector(i)))

    assert await store.get("e2999") is not None  # the last written is still there
    assert await store.get("e0") is None  # the first written went first
    newest = await store.search(vector(2999), "p", k=5, max_distance=0.1)
    assert [m.entry.id for m in newest] == ["e2999"]
    stats = await store.partition_stats()
    assert store.evictions > 0, "the bound was never reached"
    (partition,) = stats
    assert 0 < partition.entries < 3000

    client = aioredis.Redis.from_url(small_redis.url)
    info = await client.execute_command("FT.INFO", store.index_name)
    docs = int(_pairs(info)["num_docs"])
    keys = len([k async for k in client.scan_iter(match="reprise:*", _type="HASH")])
    await client.aclose()
    assert docs == keys  # RediSearch dropped every evicted key from the index
    assert 0 < keys <= partition.entries  # Redis may have evicted more since the stats

    for i in (0, 1500, 2999):  # every search answers, and only with live entries
        found = await store.search(vector(i), "p", k=5, max_distance=0.5)
        for match in found:
            assert await store.get(match.entry.id) is not None
    # Listing them is work for Redis too, which may evict more: no error, only live ones.
    assert 0 < len([e async for e in store.entries()]) <= keys
    assert await store.clear() > 0
    assert [e async for e in store.entries()] == []
