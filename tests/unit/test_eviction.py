"""Bounded size: least-recently-used eviction in the embedded store."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from reprise._cache import SemanticCache
from reprise._protocols import Entry, Vector
from reprise._stores.embedded import EmbeddedStore
from tests.fakes import DIMS, FakeEmbedder, unit


def entry(entry_id: str, vector: Vector, partition: str = "p", size: int = 10) -> Entry:
    return Entry(entry_id, partition, f"prompt {entry_id}", "r" * size, vector)


def rows_on_disk(path: Path) -> set[str]:
    with sqlite3.connect(path / "cache.sqlite3") as con:
        return {row[0] for row in con.execute("SELECT id FROM entries")}


async def test_5000_prompts_into_1000_entries_keep_the_most_recently_used() -> None:
    store = EmbeddedStore(":memory:", max_entries=1000, hot_entries=256)
    await store.open(DIMS)
    try:
        keep = [f"kept {i}" for i in range(10)]
        for name in keep:
            await store.upsert(entry(name, unit(name)))
        vectors = [unit(i) for i in range(5000)]
        tracemalloc.start()
        for i, vector in enumerate(vectors):
            await store.upsert(entry(f"unique {i}", vector))
            if i % 400 == 0:  # the ten early entries stay in use throughout
                for name in keep:
                    assert await store.get(name) is not None
            if i == 1999:
                at_2000, _ = tracemalloc.get_traced_memory()
        at_5000, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        assert len(store._rows) == 1000
        assert store.evictions == 5010 - 1000
        for name in keep:  # used recently: survived 4,000 evictions
            assert await store.get(name) is not None
        assert await store.get("unique 4999") is not None
        assert await store.get("unique 10") is None
        found = await store.search(vectors[10], "p", k=1, max_distance=0.01)
        assert found == []
        assert sum(len(index) for index in store._partitions.values()) == 1000
        assert len(store._ids) == 1000
        # Memory is flat once full: 3,000 more entries in, 3,000 out, no growth beyond noise.
        assert at_5000 - at_2000 < 64 * 1024
    finally:
        await store.aclose()


async def test_the_cache_over_a_bounded_store_serves_what_remains(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, max_entries=50)
    cache = SemanticCache(store=store, embedder=FakeEmbedder(), ttl=None)
    await cache.open()
    try:
        for i in range(200):
            await cache.store(f"unique prompt {i} on subject {i * 7}", f"answer {i}")
        assert (await cache.lookup("unique prompt 199 on subject 1393")) is not None
        assert (await cache.lookup("unique prompt 10 on subject 70")) is None
        assert store.evictions == 150
    finally:
        await cache.aclose()
    assert len(rows_on_disk(tmp_path)) == 50


async def test_recency_survives_a_restart(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, max_entries=3)
    await store.open(DIMS)
    for name in ("a", "b", "c"):
        await store.upsert(entry(name, unit(name)))
    assert await store.get("a") is not None  # "b" is now the least recently used
    await store.aclose()

    again = EmbeddedStore(tmp_path, max_entries=3)
    await again.open(DIMS)
    try:
        await again.upsert(entry("d", unit("d")))
        assert await again.get("b") is None
        assert {e for e in ("a", "c", "d") if await again.get(e) is not None} == {"a", "c", "d"}
        assert again.evictions == 1
    finally:
        await again.aclose()
    assert rows_on_disk(tmp_path) == {"a", "c", "d"}


async def test_a_lower_bound_at_open_evicts_down_to_it(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.open(DIMS)
    for i in range(10):
        await store.upsert(entry(f"e{i}", unit(i)))
    await store.aclose()

    smaller = EmbeddedStore(tmp_path, max_entries=4)
    await smaller.open(DIMS)
    try:
        assert {e async for e in _ids(smaller)} == {"e6", "e7", "e8", "e9"}
    finally:
        await smaller.aclose()


async def _ids(store: EmbeddedStore):  # type: ignore[no-untyped-def]
    async for e in store.entries():
        yield e.id


async def test_max_bytes_evicts_by_weight_and_search_agrees(tmp_path: Path) -> None:
    weight = len("prompt x") + 1000 + DIMS * 4 + len("{}")
    store = EmbeddedStore(":memory:", max_bytes=3 * weight)
    await store.open(DIMS)
    try:
        for name in ("w", "x", "y", "z"):
            await store.upsert(entry(name, unit(name), size=1000))
        assert store.bytes == 3 * weight
        assert await store.get("w") is None
        assert await store.search(unit("w"), "p", k=5, max_distance=0.01) == []
        found = await store.search(unit("z"), "p", k=5, max_distance=0.01)
        assert [m.entry.id for m in found] == ["z"]
        assert store.evictions == 1
        await store.clear()
        assert store.bytes == 0
    finally:
        await store.aclose()


async def test_an_entry_larger_than_the_bound_is_kept_alone(tmp_path: Path) -> None:
    store = EmbeddedStore(":memory:", max_bytes=100)
    await store.open(DIMS)
    try:
        await store.upsert(entry("small", unit(1), size=1))
        await store.upsert(entry("big", unit(2), size=1000))
        assert await store.get("big") is not None
        assert await store.get("small") is None
    finally:
        await store.aclose()


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        EmbeddedStore(":memory:", max_entries=0)
