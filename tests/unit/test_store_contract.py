"""The behaviour every `VectorStore` owes the cache, run against each backend.

To add a backend, add a factory to `FACTORIES`: it gets the pytest request
(for server fixtures such as `redis_url`) and a fresh temporary directory.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reprise._exceptions import StoreError
from reprise._protocols import AdminStore, Entry, TokenStore, Vector, VectorStore
from reprise._stores.embedded import EmbeddedStore
from reprise._stores.redis import RedisStore
from reprise.testing import ManualClock
from tests.fakes import DIMS, at_distance, unit

Factory = Callable[[pytest.FixtureRequest, Path, ManualClock], VectorStore]

FACTORIES: dict[str, Factory] = {
    "embedded-memory": lambda request, tmp, clock: EmbeddedStore(":memory:", clock=clock),
    "embedded-disk": lambda request, tmp, clock: EmbeddedStore(tmp / "data", clock=clock),
    # HNSW from the first entry, so every contract also holds for the ANN path.
    "embedded-ann": lambda request, tmp, clock: EmbeddedStore(
        ":memory:", ann_threshold=1, clock=clock
    ),
    # A key prefix (so an index) per test on the session's server; a generous
    # timeout because CI machines are shared and slow.
    "redis": lambda request, tmp, clock: RedisStore(
        request.getfixturevalue("redis_url"),
        prefix=f"contract:{uuid.uuid4().hex}:",
        timeout=5.0,
        clock=clock,
    ),
}


@pytest.fixture
def clock() -> ManualClock:
    """The stores' time: it stands still unless a test advances it."""
    return ManualClock()


@pytest.fixture(params=list(FACTORIES))
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Callable[[], VectorStore]:
    return lambda: FACTORIES[request.param](request, tmp_path, clock)


@pytest.fixture
async def store(store_factory: Callable[[], VectorStore]) -> AsyncIterator[VectorStore]:
    store = store_factory()
    await store.open(DIMS)
    await store.clear()
    yield store
    await store.clear()
    await store.aclose()


def entry(
    entry_id: str,
    vector: Vector,
    partition: str = "p",
    *,
    response: str | None = None,
    expires_at: float | None = None,
    meta: dict[str, Any] | None = None,
    context: str = "",
) -> Entry:
    return Entry(
        id=entry_id,
        partition=partition,
        prompt=f"prompt {entry_id}",
        response=response or f"response {entry_id}",
        vector=vector,
        created_at=1_700_000_000.5,
        expires_at=expires_at,
        meta=meta or {},
        context=context,
    )


async def test_store_satisfies_the_protocol(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)


async def test_get_returns_every_field_of_what_was_stored(store: VectorStore) -> None:
    meta = {"shape": {"stream": False, "n": 1}, "rejected": ["ab12"], "note": "héllo ✓"}
    stored = entry("id-1", unit(1), expires_at=time.time() + 3600, meta=meta, context="c0ffee")
    stored = Entry(**{**_fields(stored), "prompt": "Ünïcode prompt\nwith lines", "response": "{}"})
    await store.upsert(stored)

    got = await store.get("id-1")

    assert got is not None
    assert _fields(got, vector=False) == _fields(stored, vector=False)
    assert got.vector is not None
    np.testing.assert_allclose(got.vector, unit(1), atol=1e-6)


async def test_get_of_an_unknown_id_is_none(store: VectorStore) -> None:
    await store.upsert(entry("id-1", unit(1)))
    assert await store.get("nope") is None


async def test_upsert_of_an_existing_id_replaces_the_entry_and_its_vector(
    store: VectorStore,
) -> None:
    await store.upsert(entry("id-1", unit(1), response="old"))
    await store.upsert(entry("id-1", unit(2), response="new"))

    got = await store.get("id-1")
    assert got is not None
    assert got.response == "new"
    assert await store.search(unit(1), "p", k=5, max_distance=0.5) == []
    matches = await store.search(unit(2), "p", k=5, max_distance=0.5)
    assert [(m.entry.id, m.entry.response) for m in matches] == [("id-1", "new")]


async def test_delete_removes_the_entry_from_get_and_search(store: VectorStore) -> None:
    await store.upsert(entry("id-1", unit(1)))
    await store.upsert(entry("id-2", unit(2)))

    assert await store.delete("id-1") is True
    assert await store.delete("id-1") is False
    assert await store.get("id-1") is None
    assert await store.search(unit(1), "p", k=5, max_distance=0.5) == []
    assert await store.get("id-2") is not None


async def test_clear_partition_leaves_other_partitions(store: VectorStore) -> None:
    for i in range(3):
        await store.upsert(entry(f"a{i}", unit(f"a{i}"), "a"))
    await store.upsert(entry("b0", unit("b0"), "b"))

    assert await store.clear("a") == 3
    assert [await store.get(f"a{i}") for i in range(3)] == [None, None, None]
    assert await store.search(unit("a0"), "a", k=5, max_distance=0.5) == []
    assert await store.get("b0") is not None
    assert await store.clear("a") == 0


async def test_search_matches_the_context_exactly(store: VectorStore) -> None:
    await store.upsert(entry("none", unit(1)))
    await store.upsert(entry("ctx-a", unit(1), context="a" * 64))
    await store.upsert(entry("ctx-b", at_distance(unit(1), 0.01), context="b" * 64))
    await store.upsert(entry("other-partition", unit(1), "q", context="a" * 64))

    in_a = await store.search(unit(1), "p", k=10, max_distance=1.0, context="a" * 64)
    in_b = await store.search(unit(1), "p", k=10, max_distance=1.0, context="b" * 64)
    in_none = await store.search(unit(1), "p", k=10, max_distance=1.0)

    assert [(m.entry.id, m.entry.context) for m in in_a] == [("ctx-a", "a" * 64)]
    assert [m.entry.id for m in in_b] == ["ctx-b"]
    assert [m.entry.id for m in in_none] == ["none"]
    assert await store.search(unit(1), "p", k=10, max_distance=1.0, context="c") == []


async def test_clear_partition_clears_every_context_of_it(store: VectorStore) -> None:
    for i, context in enumerate(["", "x", "y"]):
        await store.upsert(entry(f"a{i}", unit(f"a{i}"), "a", context=context))
    await store.upsert(entry("b0", unit("b0"), "b", context="x"))

    assert await store.clear("a") == 3
    assert await store.search(unit("a1"), "a", k=5, max_distance=0.5, context="x") == []
    assert [await store.get(f"a{i}") for i in range(3)] == [None, None, None]
    assert [
        m.entry.id for m in await store.search(unit("b0"), "b", k=5, max_distance=0.5, context="x")
    ] == ["b0"]


async def test_clear_everything(store: VectorStore) -> None:
    await store.upsert(entry("a0", unit("a0"), "a"))
    await store.upsert(entry("b0", unit("b0"), "b"))

    assert await store.clear() == 2
    assert await store.get("a0") is None
    assert await store.get("b0") is None
    assert await store.search(unit("b0"), "b", k=5, max_distance=1.0) == []


async def test_search_returns_nearest_first_within_k_and_max_distance(
    store: VectorStore,
) -> None:
    query = unit("q")
    for i, distance in enumerate([0.4, 0.05, 0.2, 0.1]):
        await store.upsert(entry(f"d{distance}", at_distance(query, distance, seed=i)))

    nearest = await store.search(query, "p", k=3, max_distance=1.0)
    within = await store.search(query, "p", k=10, max_distance=0.15)

    assert [m.entry.id for m in nearest] == ["d0.05", "d0.1", "d0.2"]
    np.testing.assert_allclose([m.distance for m in nearest], [0.05, 0.1, 0.2], atol=1e-4)
    assert [m.entry.id for m in within] == ["d0.05", "d0.1"]


async def test_an_identical_vector_is_at_distance_zero_never_below(store: VectorStore) -> None:
    await store.upsert(entry("id-1", unit(1)))

    (match,) = await store.search(unit(1), "p", k=1, max_distance=0.0)

    assert match.entry.id == "id-1"
    assert 0.0 <= match.distance < 1e-5
    assert match.entry.response == "response id-1"


async def test_search_never_crosses_partitions(store: VectorStore) -> None:
    await store.upsert(entry("in-a", unit(1), "a"))
    await store.upsert(entry("in-b", unit(1), "b"))
    await store.upsert(entry("in-default", unit(1), ""))

    in_a = await store.search(unit(1), "a", k=10, max_distance=1.0)
    in_default = await store.search(unit(1), "", k=10, max_distance=1.0)

    assert [m.entry.id for m in in_a] == ["in-a"]
    assert [m.entry.id for m in in_default] == ["in-default"]
    assert await store.search(unit(1), "c", k=10, max_distance=1.0) == []


async def test_an_expired_entry_is_never_returned(store: VectorStore) -> None:
    await store.upsert(entry("old", unit(1), expires_at=time.time() - 1))
    await store.upsert(entry("live", at_distance(unit(1), 0.01), expires_at=time.time() + 60))

    assert await store.get("old") is None
    matches = await store.search(unit(1), "p", k=5, max_distance=0.5)
    assert [m.entry.id for m in matches] == ["live"]
    assert await store.delete("old") is False


async def test_an_entry_expires_while_stored(store: VectorStore, clock: ManualClock) -> None:
    await store.upsert(entry("soon", unit(1), expires_at=clock() + 0.6))
    assert await store.get("soon") is not None

    clock.advance(0.8)

    assert await store.get("soon") is None
    assert await store.search(unit(1), "p", k=5, max_distance=0.5) == []


async def test_k_larger_than_the_partition_returns_all(store: VectorStore) -> None:
    for i in range(3):
        await store.upsert(entry(f"id-{i}", at_distance(unit("q"), 0.1 * (i + 1), seed=i)))

    matches = await store.search(unit("q"), "p", k=50, max_distance=1.0)

    assert [m.entry.id for m in matches] == ["id-0", "id-1", "id-2"]


async def test_search_finds_the_true_nearest_among_many(store: VectorStore) -> None:
    vectors = np.stack([unit(f"many{i}") for i in range(300)])
    for i, vector in enumerate(vectors):
        await store.upsert(entry(f"m{i}", vector))
    query = at_distance(vectors[17], 0.05, seed="probe")

    matches = await store.search(query, "p", k=5, max_distance=2.0)

    truth = np.argsort(1.0 - vectors @ query)[:5]
    assert [m.entry.id for m in matches] == [f"m{i}" for i in truth]
    assert matches[0].entry.id == "m17"


async def test_a_vector_of_the_wrong_size_is_a_store_error(store: VectorStore) -> None:
    with pytest.raises(StoreError):
        await store.upsert(entry("bad", np.ones(DIMS + 1, dtype=np.float32)))


async def test_token_vectors_are_kept_with_the_entry_and_read_apart(store: VectorStore) -> None:
    """`stored_tokens` (`TokenStore`, both built-in stores) reads them; get and search don't."""
    assert isinstance(store, TokenStore)
    blob = bytes(range(256)) * 40  # any bytes, ~10 kB: a question's token vectors
    await store.upsert(dataclasses.replace(entry("a", unit(1)), tokens=blob))
    await store.upsert(entry("b", unit(2)))  # none: a remote embedder's, or an older entry

    assert await store.stored_tokens(["a", "b", "missing"]) == {"a": blob}
    assert await store.stored_tokens(["a"]) == {"a": blob}
    assert await store.stored_tokens([]) == {}
    got = await store.get("a")
    assert got is not None
    assert got.tokens is None
    found = await store.search(unit(1), "p", k=2, max_distance=2.0)
    assert [m.entry.id for m in found] == ["a", "b"]
    assert all(m.entry.tokens is None for m in found)


async def test_token_vectors_go_with_the_entry(store: VectorStore) -> None:
    assert isinstance(store, TokenStore)
    await store.upsert(dataclasses.replace(entry("a", unit(1)), tokens=b"first"))
    await store.upsert(dataclasses.replace(entry("a", unit(1)), tokens=b"second"))
    assert await store.stored_tokens(["a"]) == {"a": b"second"}
    await store.upsert(entry("a", unit(1)))  # replaced by an entry without any
    assert await store.stored_tokens(["a"]) == {}
    await store.upsert(dataclasses.replace(entry("a", unit(1)), tokens=b"third"))
    await store.delete("a")
    assert await store.stored_tokens(["a"]) == {}


async def test_token_vectors_count_in_an_entrys_bytes(store: VectorStore) -> None:
    assert isinstance(store, AdminStore)
    await store.upsert(entry("a", unit(1)))
    (before,) = await store.partition_stats()
    await store.upsert(dataclasses.replace(entry("a", unit(1)), tokens=b"x" * 1000))
    (after,) = await store.partition_stats()
    assert after.bytes - before.bytes == 1000


def _fields(e: Entry, *, vector: bool = True) -> dict[str, Any]:
    fields = {name: getattr(e, name) for name in Entry.__slots__}
    if not vector:
        del fields["vector"]
    fields["meta"] = dict(fields["meta"])
    return fields
