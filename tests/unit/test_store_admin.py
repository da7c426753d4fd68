"""`AdminStore`: what operating a store needs (stats, listing), against every backend."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from reprise._protocols import AdminStore, Entry, VectorStore
from reprise.testing import ManualClock
from tests.fakes import DIMS, unit
from tests.unit.test_store_contract import FACTORIES, entry


@pytest.fixture(params=list(FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    factory: Callable[..., VectorStore] = FACTORIES[request.param]
    store = factory(request, tmp_path, ManualClock())
    await store.open(DIMS)
    await store.clear()
    yield store
    await store.clear()
    await store.aclose()


async def test_every_store_is_an_admin_store(store: VectorStore) -> None:
    assert isinstance(store, AdminStore)


async def test_partition_stats_count_entries_bytes_and_ages(store: VectorStore) -> None:
    assert isinstance(store, AdminStore)
    first = Entry("a1", "a", "prompt", "response", unit(1), created_at=100.0, meta={})
    second = Entry("a2", "a", "prompt two", "r", unit(2), created_at=200.0, meta={"k": 1})
    await store.upsert(first)
    await store.upsert(second)
    await store.upsert(entry("b1", unit(3), "b"))
    await store.upsert(entry("gone", unit(4), "b", expires_at=time.time() - 1))

    stats = {s.partition: s for s in await store.partition_stats()}

    assert set(stats) == {"a", "b"}
    assert (stats["a"].entries, stats["b"].entries) == (2, 1)
    assert (stats["a"].oldest, stats["a"].newest) == (100.0, 200.0)
    vector = DIMS * 4
    # prompt + response + vector + meta JSON ("{}" and '{"k":1}' or '{"k": 1}')
    low = len("promptresponseprompt twor") + 2 * vector + len("{}{}") + 5
    assert low <= stats["a"].bytes <= low + 4
    assert store.evictions == 0


async def test_entries_lists_every_live_entry_with_its_vector(store: VectorStore) -> None:
    assert isinstance(store, AdminStore)
    for i in range(300):  # more than one page or scan batch
        await store.upsert(entry(f"e{i}", unit(i), "p" if i % 2 else "q"))
    await store.upsert(entry("gone", unit(-1), expires_at=time.time() - 1))

    listed = [e async for e in store.entries()]
    only_p = [e async for e in store.entries("p")]

    assert sorted(e.id for e in listed) == sorted(f"e{i}" for i in range(300))
    assert {e.id for e in only_p} == {f"e{i}" for i in range(1, 300, 2)}
    one = next(e for e in listed if e.id == "e7")
    assert one.prompt == "prompt e7"
    assert one.response == "response e7"
    assert one.vector is not None
    assert float(one.vector @ unit(7)) == pytest.approx(1.0)
