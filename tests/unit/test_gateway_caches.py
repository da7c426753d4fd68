"""The gateway's cache slots: which open failures are retried and which stop the start."""

from __future__ import annotations

import pytest

from reprise import IndexMismatch, SemanticCache, StoreUnavailable, ThresholdVerifier
from reprise._gateway.caches import CacheSlot, make_slots
from reprise._gateway.config import parse_config
from reprise._stores.embedded import EmbeddedStore
from tests.fakes import FakeEmbedder


class FailingOpenStore(EmbeddedStore):
    def __init__(self, error: Exception) -> None:
        super().__init__(":memory:")
        self.error = error

    async def open(self, dims: int) -> None:
        raise self.error


def slot_with(error: Exception) -> CacheSlot:
    async def factory() -> SemanticCache:
        return SemanticCache(
            store=FailingOpenStore(error), embedder=FakeEmbedder(), verifier=ThresholdVerifier()
        )

    return CacheSlot("emb", factory)


async def test_an_unreachable_store_is_retried_later() -> None:
    slot = slot_with(StoreUnavailable("connection refused"))
    assert await slot.open_once() is False
    assert slot.cache is None
    assert "connection refused" in slot.error


async def test_an_index_mismatch_stops_the_start_instead_of_serving_uncached() -> None:
    slot = slot_with(IndexMismatch("index has DIM 768, the embedder makes 384"))
    with pytest.raises(IndexMismatch, match="DIM 768"):
        await slot.open_once()
    assert slot.cache is None


def slot_warming(embedder: FakeEmbedder, batch: int) -> CacheSlot:
    async def factory() -> SemanticCache:
        return SemanticCache(
            store=EmbeddedStore(":memory:"), embedder=embedder, verifier=ThresholdVerifier()
        )

    return CacheSlot("emb", factory, warm_up_batch=batch)


async def test_opening_runs_the_model_once_alone_and_once_on_a_batch_of_distinct_texts() -> None:
    embedder = FakeEmbedder()
    slot = slot_warming(embedder, 32)
    assert await slot.open_once() is True
    assert embedder.calls == 2
    assert len(embedder.texts) == 33
    assert len(set(embedder.texts[1:])) == 32  # none served from a cache of repeated texts
    await slot.aclose()


async def test_a_slot_without_a_warm_up_batch_runs_the_model_once() -> None:
    embedder = FakeEmbedder()
    slot = slot_warming(embedder, 0)
    assert await slot.open_once() is True
    assert (embedder.calls, len(embedder.texts)) == (1, 1)
    await slot.aclose()


def config_for(embeddings: str, in_flight: int = 64) -> str:
    return f"""
backends:
  upstream: {{url: "http://127.0.0.1:9/v1"}}
  embeddings: {embeddings}
cache: {{url: ":memory:", max-lookups-in-flight: {in_flight}}}
apis:
  - name: chat
    path: /chat
    backend: upstream
    policies: |
      <policies><inbound><base />
        <llm-semantic-cache-lookup score-threshold="0.1" embeddings-backend-id="embeddings" />
      </inbound><outbound><llm-semantic-cache-store duration="60" /><base /></outbound>
      </policies>
"""


def test_a_served_local_model_warms_up_on_a_batch_as_large_as_lookups_may_run_at_once() -> None:
    local = parse_config(config_for("{url: local}", in_flight=16))
    assert make_slots(local)["embeddings"].warm_up_batch == 16
    assert make_slots(parse_config(config_for("{url: local}")))["embeddings"].warm_up_batch == 64
    assert make_slots(local, serving=False)["embeddings"].warm_up_batch == 0  # `reprise cache`


def test_a_remote_embeddings_endpoint_is_not_sent_a_warm_up_batch() -> None:
    remote = parse_config(config_for('{url: "http://127.0.0.1:9/v1/embeddings"}'))
    assert make_slots(remote)["embeddings"].warm_up_batch == 0
