"""The LRU in front of an embedder: an exact repeat never reaches the embedder twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from reprise._embedders.lru import LRUEmbedder
from reprise._exceptions import EmbedderError
from reprise._protocols import Embedder, Vector


class CountingEmbedder:
    """A distinct unit vector per distinct text; records every text it was asked for."""

    dims = 16

    def __init__(self, *, delay: float = 0.0, fail: bool = False) -> None:
        self.seen: list[str] = []
        self.closed = False
        self.delay = delay
        self.fail = fail

    async def embed(self, texts: Sequence[str]) -> Vector:
        self.seen.extend(texts)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise EmbedderError("model down")
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


async def test_concurrent_repeats_wait_for_one_embedding() -> None:
    inner = CountingEmbedder(delay=0.01)
    lru = LRUEmbedder(inner)
    results = await asyncio.gather(
        *(lru.embed(["same new prompt"]) for _ in range(5)), lru.embed(["same new prompt", "x"])
    )
    assert inner.seen == ["same new prompt", "x"]
    for result in results:
        np.testing.assert_array_equal(result[0], results[0][0])


async def test_a_failure_reaches_every_waiter_and_is_not_remembered() -> None:
    inner = CountingEmbedder(delay=0.01, fail=True)
    lru = LRUEmbedder(inner)
    results = await asyncio.gather(
        lru.embed(["p"]), lru.embed(["p"]), lru.embed(["p"]), return_exceptions=True
    )
    assert all(isinstance(r, EmbedderError) for r in results)
    assert inner.seen == ["p"]
    inner.fail = False
    assert (await lru.embed(["p"])).shape == (1, 16)
    assert inner.seen == ["p", "p"]


async def test_a_waiter_giving_up_does_not_cancel_the_embedding() -> None:
    inner = CountingEmbedder(delay=0.02)
    lru = LRUEmbedder(inner)
    owner = asyncio.ensure_future(lru.embed(["p"]))
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(lru.embed(["p"]))
    await asyncio.sleep(0)
    waiter.cancel()
    assert (await owner).shape == (1, 16)
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_call_larger_than_the_lru_still_returns_every_vector() -> None:
    inner = CountingEmbedder()
    lru = LRUEmbedder(inner, size=1)
    vectors = await lru.embed(["a", "b", "c"])
    np.testing.assert_array_equal(vectors, await inner.embed(["a", "b", "c"]))
