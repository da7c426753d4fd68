"""The LRU in front of an embedder: an exact repeat never reaches the embedder twice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reprise._embedders.lru import LRUEmbedder
from reprise._protocols import Embedder, Vector


class CountingEmbedder:
    """A distinct unit vector per distinct text; records every text it was asked for."""

    dims = 16

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.closed = False

    async def embed(self, texts: Sequence[str]) -> Vector:
        self.seen.extend(texts)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, hash(text) % self.dims] = 1.0
        return out

    async def aclose(self) -> None:
        self.closed = True


async def test_repeats_are_embedded_once() -> None:
    inner = CountingEmbedder()
    lru = LRUEmbedder(inner, size=10)
    assert isinstance(lru, Embedder)
    first = await lru.embed(["a", "b", "a"])
    second = await lru.embed(["b", "a", "c"])
    assert inner.seen == ["a", "b", "c"]
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(first[0], second[1])
    np.testing.assert_array_equal(second[2], (await inner.embed(["c"]))[0])


async def test_least_recently_used_is_forgotten_first() -> None:
    inner = CountingEmbedder()
    lru = LRUEmbedder(inner, size=2)
    await lru.embed(["a"])
    await lru.embed(["b"])
    await lru.embed(["a"])  # "a" is now the most recent; "b" the oldest
    await lru.embed(["c"])  # evicts "b"
    inner.seen.clear()
    await lru.embed(["a", "c"])
    assert inner.seen == []
    await lru.embed(["b"])
    assert inner.seen == ["b"]


async def test_dims_and_close_pass_through() -> None:
    inner = CountingEmbedder()
    lru = LRUEmbedder(inner)
    assert lru.dims == 16
    assert (await lru.embed([])).shape == (0, 16)
    assert inner.seen == []
    await lru.aclose()
    assert inner.closed
