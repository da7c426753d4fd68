"""Token vectors stored with Redis entries: a replica judges another's entry with no model call.

Two caches on one Valkey prefix, each with its own store and its own token
memory (two replicas). The writer's entry carries its prompt's token vectors;
the reader's verifier gets them from Redis (one `HGET`, only for a candidate it
judges), never from a second model call. The exact tier never reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from reprise import SemanticCache
from reprise._embedders.tokens import TokenMemory
from reprise._stores.redis import RedisStore
from tests.e2e.test_redis_near_cache import count_reads
from tests.unit.test_token_memory import FakeTokenEmbedder, Recording

STORED = "how do I bake bread at home"
REWORDED = "how can I bake bread at home"


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[Callable[..., SemanticCache]]:
    """Opened caches on one fresh prefix, each a replica of its own; closed at the end."""
    prefix = f"tokens:{uuid.uuid4().hex}:"
    made: list[SemanticCache] = []

    async def make(query: str = "", **options: Any) -> SemanticCache:
        store = RedisStore(redis_url + query, prefix=prefix, timeout=5.0)
        options.setdefault("embedder", FakeTokenEmbedder())
        cache = SemanticCache(store=store, verifier=Recording(), **options)
        await cache.open()
        made.append(cache)
        return cache

    yield make  # type: ignore[misc]
    for cache in made:
        await cache.aclose()


def commands(cache: SemanticCache) -> list[tuple[Any, ...]]:
    """The single commands the cache's Redis store sends from now on."""
    assert isinstance(cache.vector_store, RedisStore)
    return count_reads(cache.vector_store)


async def test_a_replica_judges_an_entry_stored_by_another_with_no_model_call(
    replicas: Callable[..., Any],
) -> None:
    writer = await replicas()
    model = FakeTokenEmbedder()
    reader = await replicas(embedder=model)
    await writer.store(STORED, "answer")
    sent = commands(reader)

    hit = await reader.lookup(REWORDED)

    assert hit is not None
    assert hit.tier == "semantic"
    assert model.token_calls == [[REWORDED]]  # its own question only
    assert [args[0] for args in sent] == ["HMGET", "FT.SEARCH", "HGET"]
    assert sent[-1][2] == "tokens"
    assert isinstance(reader.tokens, TokenMemory)
    assert reader.tokens.knows(STORED)

    # Judged again: remembered now, so no read of the field either.
    del sent[:]
    assert await reader.lookup(REWORDED) is not None
    assert [args[0] for args in sent] == ["HMGET", "FT.SEARCH"]
    assert model.token_calls == [[REWORDED]]


async def test_an_exact_hit_never_reads_the_token_vectors(
    replicas: Callable[..., Any],
) -> None:
    writer = await replicas()
    reader = await replicas()
    await writer.store(STORED, "answer")
    sent = commands(reader)

    hit = await reader.lookup(STORED)

    assert hit is not None
    assert hit.tier == "exact"
    assert [args[0] for args in sent] == ["HMGET"]
    assert "tokens" not in sent[0]


async def test_entries_without_or_with_broken_token_vectors_cost_one_call(
    replicas: Callable[..., Any],
) -> None:
    """An older entry (no field), a garbled field, another model's: judged as before."""
    writer = await replicas()
    await writer.store(STORED, "answer")
    store = writer.vector_store
    assert isinstance(store, RedisStore)
    key = store.prefix + writer.prompt(STORED).key("")

    for damage in ("missing", "garbled", "truncated"):
        if damage == "missing":
            await store._client.hdel(key, "tokens")
        else:
            await writer.store(STORED, "answer")
            blob = await store._client.hget(key, "tokens")
            assert isinstance(blob, bytes)
            broken = blob[:-1] + bytes([blob[-1] ^ 1]) if damage == "garbled" else blob[:100]
            await store._client.hset(key, "tokens", broken)
        model = FakeTokenEmbedder()
        reader = await replicas(embedder=model)

        hit = await reader.lookup(REWORDED)

        assert hit is not None, damage
        assert hit.response == "answer", damage
        assert model.token_calls == [[REWORDED], [STORED]], damage

    class OtherModel(FakeTokenEmbedder):
        model_id = "another-model"

    await writer.store(STORED, "answer")
    other = OtherModel()
    reader = await replicas(embedder=other)
    assert await reader.lookup(REWORDED) is not None
    assert other.token_calls == [[REWORDED], [STORED]]


async def test_a_redis_error_reading_them_falls_back_to_the_model_call(
    replicas: Callable[..., Any],
) -> None:
    writer = await replicas()
    await writer.store(STORED, "answer")
    model = FakeTokenEmbedder()
    reader = await replicas(embedder=model)
    store = reader.vector_store
    assert isinstance(store, RedisStore)

    async def failing(entry_ids: Any) -> dict[str, bytes]:
        from reprise._exceptions import StoreError

        raise StoreError("redis error: simulated")

    store.stored_tokens = failing  # type: ignore[method-assign]

    assert await reader.lookup(REWORDED) is not None
    assert model.token_calls == [[REWORDED], [STORED]]


async def test_token_vectors_off_stores_none_and_costs_the_call(
    replicas: Callable[..., Any],
) -> None:
    writer = await replicas("?token_vectors=0")
    await writer.store(STORED, "answer")
    store = writer.vector_store
    assert isinstance(store, RedisStore)
    key = store.prefix + writer.prompt(STORED).key("")
    assert await store._client.hexists(key, "tokens") == 0
    model = FakeTokenEmbedder()
    reader = await replicas(embedder=model)

    assert await reader.lookup(REWORDED) is not None
    assert model.token_calls == [[REWORDED], [STORED]]


def test_token_vectors_option_must_be_a_yes_or_no() -> None:
    from reprise._exceptions import ConfigError

    with pytest.raises(ConfigError, match="token_vectors must be 0 or 1"):
        RedisStore("redis://localhost:1/0?token_vectors=maybe")
    assert not RedisStore("redis://localhost:1/0?token_vectors=off").token_vectors
