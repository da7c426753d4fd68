"""What only the embedded store promises: persistence, the exact→HNSW switch, clean-up."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from reprise._exceptions import IndexMismatch, StoreError, StoreUnavailable
from reprise._protocols import Entry, Vector
from reprise._stores._index import ExactIndex, HNSWIndex
from reprise._stores._sqlite import Database
from reprise._stores.embedded import EmbeddedStore
from reprise.testing import ManualClock
from tests.fakes import DIMS, at_distance, unit


def entry(entry_id: str, vector: Vector, partition: str = "p", **kw: object) -> Entry:
    return Entry(entry_id, partition, f"prompt {entry_id}", f"response {entry_id}", vector, **kw)  # type: ignore[arg-type]


def rows_on_disk(path: Path) -> set[str]:
    with sqlite3.connect(path / "cache.sqlite3") as con:
        return {row[0] for row in con.execute("SELECT id FROM entries")}


async def test_entries_survive_a_restart_and_expired_ones_do_not(tmp_path: Path) -> None:
    clock = ManualClock()
    store = EmbeddedStore(tmp_path, clock=clock)
    await store.open(DIMS)
    await store.upsert(entry("kept", unit(1), meta={"n": 1}))
    await store.upsert(entry("other", unit(1), "q"))
    await store.upsert(entry("short", unit(2), expires_at=clock() + 0.3))
    await store.aclose()
    clock.advance(0.4)

    again = EmbeddedStore(tmp_path, clock=clock)
    await again.open(DIMS)
    try:
        kept = await again.get("kept")
        assert kept is not None
        assert kept.meta == {"n": 1}
        assert [m.entry.id for m in await again.search(unit(1), "p", k=5, max_distance=1)] == [
            "kept"
        ]
        assert await again.get("short") is None
        assert await again.search(unit(2), "p", k=1, max_distance=0.1) == []
        await again.upsert(entry("new", unit(3)))  # labels continue after the stored ones
        assert {m.entry.id for m in await again.search(unit(3), "p", k=5, max_distance=2)} == {
            "new",
            "kept",
        }
    finally:
        await again.aclose()


async def test_the_data_directory_holds_one_sqlite_file_in_wal_mode(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open(DIMS)
    await store.upsert(entry("a", unit(1)))
    await store.aclose()

    with sqlite3.connect(tmp_path / "data" / "cache.sqlite3") as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert rows_on_disk(tmp_path / "data") == {"a"}


async def test_memory_store_writes_nothing_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = EmbeddedStore(":memory:")
    await store.open(DIMS)
    await store.upsert(entry("a", unit(1)))
    await store.aclose()
    assert os.listdir(tmp_path) == []


async def test_reopening_with_other_dims_is_an_index_mismatch(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.open(DIMS)
    await store.aclose()

    other = EmbeddedStore(tmp_path)
    with pytest.raises(IndexMismatch, match=f"{DIMS}-dimensional.*{DIMS * 2}-dimensional"):
        await other.open(DIMS * 2)
    with pytest.raises(StoreUnavailable):
        await other.get("a")


async def test_a_closed_store_raises_store_unavailable() -> None:
    store = EmbeddedStore(":memory:")
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.upsert(entry("a", unit(1)))
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.search(unit(1), "p", k=1, max_distance=1)
    await store.open(DIMS)
    await store.upsert(entry("a", unit(1)))
    await store.aclose()
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get("a")


async def test_an_unusable_path_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        await EmbeddedStore(tmp_path / "file").open(DIMS)


async def test_meta_that_is_not_json_is_a_store_error() -> None:
    store = EmbeddedStore(":memory:")
    await store.open(DIMS)
    try:
        with pytest.raises(StoreError, match="JSON"):
            await store.upsert(entry("a", unit(1), meta={"x": object()}))
        assert await store.get("a") is None
    finally:
        await store.aclose()


async def test_small_partitions_are_exact_and_large_ones_switch_to_hnsw() -> None:
    store = EmbeddedStore(":memory:", ann_threshold=20)
    await store.open(DIMS)
    try:
        for i in range(20):
            await store.upsert(entry(f"s{i}", unit(f"s{i}"), "small"))
            await store.upsert(entry(f"b{i}", unit(f"b{i}"), "big"))
        assert not store._partitions[("big", "")].is_ann
        await store.upsert(entry("b20", unit("b20"), "big"))

        assert store._partitions[("big", "")].is_ann
        assert not store._partitions[("small", "")].is_ann
        for name, prefix in [("big", "b"), ("small", "s")]:
            (match,) = await store.search(unit(f"{prefix}7"), name, k=1, max_distance=0.01)
            assert match.entry.id == f"{prefix}7"
    finally:
        await store.aclose()


async def test_a_background_upgrade_keeps_writes_made_while_it_builds() -> None:
    store = EmbeddedStore(":memory:", ann_threshold=300)
    await store.open(DIMS)
    try:
        for i in range(301):
            await store.upsert(entry(f"e{i}", unit(f"e{i}")))
        # The upgrade now runs in a thread; these land in its journal or after it.
        await store.delete("e3")
        await store.upsert(entry("e5", unit("moved")))
        await store.upsert(entry("late", unit("late")))
        await asyncio.gather(*store._tasks - {t for t in store._tasks if "purge" in repr(t)})

        assert store._partitions[("p", "")].is_ann
        assert await store.search(unit("e3"), "p", k=1, max_distance=0.05) == []
        assert await store.search(unit("e5"), "p", k=1, max_distance=0.05) == []
        for probe, expected in [("moved", "e5"), ("late", "late"), ("e200", "e200")]:
            (match,) = await store.search(unit(probe), "p", k=1, max_distance=0.05)
            assert match.entry.id == expected
    finally:
        await store.aclose()


async def test_a_large_partition_is_rebuilt_as_hnsw_on_open(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, ann_threshold=50)
    await store.open(DIMS)
    for i in range(60):
        await store.upsert(entry(f"e{i}", unit(f"e{i}")))
    await store.aclose()

    again = EmbeddedStore(tmp_path, ann_threshold=50)
    await again.open(DIMS)
    try:
        assert again._partitions[("p", "")].is_ann
        query = at_distance(unit("e42"), 0.02)
        (match,) = await again.search(query, "p", k=1, max_distance=0.05)
        assert match.entry.id == "e42"
    finally:
        await again.aclose()


async def test_expired_rows_are_purged_from_disk(tmp_path: Path) -> None:
    clock = ManualClock()
    store = EmbeddedStore(tmp_path, purge_interval=0.05, clock=clock)
    await store.open(DIMS)
    try:
        await store.upsert(entry("gone", unit(1), expires_at=clock() + 0.1))
        await store.upsert(entry("kept", unit(2)))
        assert rows_on_disk(tmp_path) == {"gone", "kept"}
        clock.advance(0.4)
        for _ in range(250):  # the purge runs every 50 ms of real time
            if rows_on_disk(tmp_path) == {"kept"}:
                break
            await asyncio.sleep(0.02)

        assert rows_on_disk(tmp_path) == {"kept"}
        assert "gone" not in store._rows
    finally:
        await store.aclose()


async def test_an_expired_entry_found_by_a_read_leaves_memory_at_once() -> None:
    store = EmbeddedStore(":memory:")
    await store.open(DIMS)
    try:
        await store.upsert(entry("old", unit(1), expires_at=time.time() - 1))
        await store.upsert(entry("old2", unit(2), expires_at=time.time() - 1))
        assert await store.get("old") is None
        assert await store.search(unit(2), "p", k=1, max_distance=0.1) == []

        assert store._rows == {}
        assert store._partitions == {}
    finally:
        await store.aclose()


async def test_searching_past_many_expired_neighbours_still_finds_k_live_ones() -> None:
    store = EmbeddedStore(":memory:", ann_threshold=1)
    await store.open(DIMS)
    try:
        query = unit("q")
        for i in range(10):
            await store.upsert(
                entry(f"dead{i}", at_distance(query, 0.01 + i * 0.001, i), expires_at=1.0)
            )
        for i in range(3):
            await store.upsert(entry(f"live{i}", at_distance(query, 0.1 + i * 0.01, f"l{i}")))

        matches = await store.search(query, "p", k=2, max_distance=0.5)

        assert [m.entry.id for m in matches] == ["live0", "live1"]
    finally:
        await store.aclose()


async def test_get_of_a_hot_entry_needs_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    store = EmbeddedStore(":memory:")
    await store.open(DIMS)
    try:
        await store.upsert(entry("hot", unit(1)))

        async def no_io(*args: object) -> object:
            raise AssertionError("went to SQLite")

        monkeypatch.setattr(store, "_run", no_io)
        got = await store.get("hot")
        assert got is not None
        assert got.response == "response hot"
        assert await store.get("unknown") is None
    finally:
        monkeypatch.undo()
        await store.aclose()


async def test_a_cold_entry_is_read_from_disk() -> None:
    store = EmbeddedStore(":memory:", hot_entries=1)
    await store.open(DIMS)
    try:
        await store.upsert(entry("a", unit(1), meta={"k": [1, 2]}))
        await store.upsert(entry("b", unit(2)))
        assert "a" not in store._hot

        got = await store.get("a")
        assert got is not None
        assert got.meta == {"k": [1, 2]}
        assert got.vector is not None
        np.testing.assert_allclose(got.vector, unit(1))
    finally:
        await store.aclose()


async def _filled(path: Path, n: int = 60, **kw: object) -> None:
    store = EmbeddedStore(path, ann_threshold=50)
    await store.open(DIMS)
    for i in range(n):
        await store.upsert(entry(f"e{i}", unit(f"e{i}"), **kw))  # type: ignore[arg-type]
    assert store._partitions[("p", "")].is_ann
    await store.aclose()


async def test_the_graph_is_saved_at_close_and_loaded_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _filled(tmp_path)
    assert (tmp_path / "ann" / "manifest.json").exists()

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the graph was rebuilt")

    monkeypatch.setattr(HNSWIndex, "add", no_rebuild)
    store = EmbeddedStore(tmp_path, ann_threshold=50)
    await store.open(DIMS)
    monkeypatch.undo()
    try:
        assert store._partitions[("p", "")].is_ann
        (match,) = await store.search(at_distance(unit("e9"), 0.02), "p", k=1, max_distance=0.1)
        assert match.entry.id == "e9"
    finally:
        await store.aclose()


async def test_a_graph_not_vouched_for_by_a_clean_close_is_rebuilt(tmp_path: Path) -> None:
    await _filled(tmp_path)
    store = EmbeddedStore(tmp_path, ann_threshold=50)
    await store.open(DIMS)
    await store.upsert(entry("after", unit("after")))
    store._saved = None  # a crash: the new row is on disk, the saved graph lacks it
    await store.aclose()

    again = EmbeddedStore(tmp_path, ann_threshold=50)
    await again.open(DIMS)
    try:
        (match,) = await again.search(unit("after"), "p", k=1, max_distance=0.01)
        assert match.entry.id == "after"
        assert len(again._partitions[("p", "")]) == 61
    finally:
        await again.aclose()


async def test_entries_expired_since_the_save_leave_the_loaded_graph(tmp_path: Path) -> None:
    clock = ManualClock()
    await _filled(tmp_path, expires_at=clock() + 0.3)
    store = EmbeddedStore(tmp_path, ann_threshold=50, clock=clock)
    await store.open(DIMS)
    for i in range(60, 120):
        await store.upsert(entry(f"e{i}", unit(f"e{i}")))
    await store.aclose()
    clock.advance(0.4)

    again = EmbeddedStore(tmp_path, ann_threshold=50, clock=clock)
    await again.open(DIMS)
    try:
        assert len(again._partitions[("p", "")]) == 60
        assert await again.search(unit("e3"), "p", k=1, max_distance=0.01) == []
        (match,) = await again.search(unit("e70"), "p", k=1, max_distance=0.01)
        assert match.entry.id == "e70"
    finally:
        await again.aclose()


def test_exact_index_search_spans_blocks_and_survives_removals() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2600, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ExactIndex(DIMS)
    index.add(np.arange(2600, dtype=np.int64), vectors)
    for label in range(0, 2600, 7):
        index.remove(label)
    kept = np.array([i for i in range(2600) if i % 7])
    query = vectors[2599] + 0.1 * vectors[5]
    query /= np.linalg.norm(query)

    labels, distances = index.search(query.astype(np.float32), 20)

    want = kept[np.argsort(1.0 - vectors[kept] @ query)[:20]]
    assert labels.tolist() == want.tolist()
    np.testing.assert_allclose(distances, 1.0 - vectors[want] @ query, atol=1e-5)
    assert len(index) == len(kept)


async def test_a_failed_open_saves_no_graph_and_the_next_open_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _filled(tmp_path)

    def broken(*args: object, **kw: object) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Database, "live_rows", broken)
    with pytest.raises(StoreUnavailable, match="disk I/O"):
        await EmbeddedStore(tmp_path, ann_threshold=50).open(DIMS)
    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "cache.sqlite3") as con:
        assert con.execute("SELECT value FROM settings WHERE key = 'ann_token'").fetchall() == []

    store = EmbeddedStore(tmp_path, ann_threshold=50)
    await store.open(DIMS)
    try:
        assert len(store._partitions[("p", "")]) == 60
    finally:
        await store.aclose()
