"""The gateway's cache slots: which open failures are retried and which stop the start."""

from __future__ import annotations

import pytest

from reprise import IndexMismatch, SemanticCache, StoreUnavailable, ThresholdVerifier
from reprise._gateway.caches import CacheSlot
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
