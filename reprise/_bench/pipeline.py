"""Run labelled pairs through `SemanticCache.explain`, the gateway's own lookup path.

Pair mode: each pair's `text_a` is stored in a partition of its own, then `text_b`
is looked up there at every threshold of the sweep. Replay mode: a shuffled stream
of all texts goes through one shared partition, storing each miss, as traffic would.

Only work whose result cannot change between thresholds is shared: vectors come
from the cache's LRU embedder, filled in batches up front, and a store search is
done once per lookup at the loosest radius and filtered for tighter ones (the top
k within a smaller radius are a prefix of those within a larger one). The exact
tier, the candidate filtering and every verifier decision run for real, per threshold.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from reprise._bench.data import Pair, duplicate_clusters
from reprise._cache import SemanticCache
from reprise._embedders.lru import LRUEmbedder
from reprise._embedders.tokens import TokenMemory
from reprise._protocols import Entry, Match, Vector, VectorStore

EMBED_BATCH = 256
CHUNK = 4096  # pairs stored at a time; the store is cleared between chunks


@dataclass(slots=True)
class SweepResult:
    """Per pair (rows) and threshold (columns): did `text_b` hit `text_a`."""

    thresholds: list[float]
    hits: npt.NDArray[np.bool_]
    exact: npt.NDArray[np.bool_]
    verify_ms: list[float] = field(default_factory=list)


class SearchMemo:
    """A `VectorStore` wrapper that answers repeat searches of one vector from memory.

    A search with a radius within a remembered one is answered by filtering the
    remembered matches; anything else goes to the store.
    """

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self._memo: dict[tuple[str, str, bytes, int], tuple[float, list[Match]]] = {}

    def forget(self) -> None:
        self._memo.clear()

    async def open(self, dims: int) -> None:
        await self.inner.open(dims)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def get(self, entry_id: str) -> Entry | None:
        return await self.inner.get(entry_id)

    async def search(
        self, vector: Vector, partition: str, *, k: int, max_distance: float, context: str = ""
    ) -> list[Match]:
        key = (partition, context, vector.tobytes(), k)
        remembered = self._memo.get(key)
        if remembered is not None and max_distance <= remembered[0]:
            return [m for m in remembered[1] if m.distance <= max_distance]
        matches = await self.inner.search(
            vector, partition, k=k, max_distance=max_distance, context=context
        )
        self._memo[key] = (max_distance, matches)
        return matches

    async def upsert(self, entry: Entry) -> None:
        self._memo.clear()
        await self.inner.upsert(entry)

    async def delete(self, entry_id: str) -> bool:
        self._memo.clear()
        return await self.inner.delete(entry_id)

    async def clear(self, partition: str | None = None) -> int:
        self._memo.clear()
        return await self.inner.clear(partition)


def unique_texts(pairs: Iterable[Pair]) -> list[str]:
    return list(dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)))


async def warm_embeddings(cache: SemanticCache, texts: Sequence[str], *, progress: bool) -> None:
    """Embed every text in batches, so lookups find their vectors in the cache's LRU."""
    lru = cache.embedder
    if isinstance(lru, LRUEmbedder):
        lru.size = max(lru.size, len(texts) + EMBED_BATCH)
    if isinstance(cache.tokens, TokenMemory):
        cache.tokens.size = max(cache.tokens.size, len(texts) + EMBED_BATCH)
    # Similar lengths batch together: a batch is padded to its longest text.
    texts = sorted(texts, key=len)
    bar = tqdm(total=len(texts), desc="embed", unit="text", disable=not progress)
    with bar:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            await lru.embed(batch)
            bar.update(len(batch))


async def sweep_pairs(
    cache: SemanticCache,
    pairs: Sequence[Pair],
    thresholds: Sequence[float],
    *,
    progress: bool,
    desc: str = "pairs",
) -> SweepResult:
    """Store each `text_a` in its own partition, look `text_b` up at every threshold."""
    order = sorted(range(len(thresholds)), key=lambda j: -thresholds[j])  # loosest first
    hits = np.zeros((len(pairs), len(thresholds)), dtype=bool)
    exact = np.zeros(len(pairs), dtype=bool)
    verify_ms: list[float] = []
    memo = SearchMemo(cache.vector_store)
    cache.vector_store = memo
    try:
        bar = tqdm(total=len(pairs), desc=desc, unit="pair", disable=not progress)
        with bar:
            for start in range(0, len(pairs), CHUNK):
                chunk = range(start, min(start + CHUNK, len(pairs)))
                for i in chunk:
                    await cache.store(pairs[i].text_a, f"answer {i}", _partition(i))
                for i in chunk:
                    for j in order:
                        lookup = await cache.explain(
                            pairs[i].text_b, _partition(i), threshold=thresholds[j]
                        )
                        hits[i, j] = lookup.hit is not None
                        exact[i] |= lookup.hit is not None and lookup.hit.tier == "exact"
                        if j == order[0] and lookup.candidates:
                            verify_ms.append(lookup.verify_ms)
                    memo.forget()
                    bar.update(1)
                await cache.clear()
    finally:
        cache.vector_store = memo.inner
    return SweepResult(list(thresholds), hits, exact, verify_ms)


def _partition(i: int) -> str:
    return f"pair-{i}"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    threshold: float
    lookups: int
    hits: int
    correct_hits: int
    false_hits: int
    labelled_false_hits: int
    misses: int
    opportunities: int
    examples: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        rates = {
            "hit_rate": _div(self.hits, self.lookups),
            "precision": _div(self.correct_hits, self.hits),
            "recall": _div(self.correct_hits, self.opportunities),
            "false_hit_rate": _div(self.false_hits, self.lookups),
        }
        return {
            "threshold": self.threshold,
            "lookups": self.lookups,
            "hits": self.hits,
            "correct_hits": self.correct_hits,
            "false_hits": self.false_hits,
            "labelled_false_hits": self.labelled_false_hits,
            "misses": self.misses,
            "opportunities": self.opportunities,
            **rates,
            "examples": self.examples,
        }


def _div(a: int, b: int) -> float:
    return a / b if b else float("nan")


async def replay(
    cache: SemanticCache,
    pairs: Sequence[Pair],
    threshold: float,
    *,
    seed: int = 0,
    limit: int | None = None,
    progress: bool,
) -> ReplayResult:
    """Every distinct text once, shuffled, through one partition; misses are stored.

    A hit is correct iff both texts are in one duplicate cluster (labelled
    duplicates, transitively). Unlabelled pairs count as wrong, so the false-hit
    figure is an upper bound; `labelled_false_hits` counts hits on pairs the data
    labels different, a lower bound. `opportunities` counts lookups whose cluster
    had already been seen, the hits a perfect cache would make.
    """
    clusters = duplicate_clusters(list(pairs))
    negatives = {frozenset((p.text_a, p.text_b)) for p in pairs if p.label == 0}
    texts = unique_texts(pairs)
    random.Random(seed).shuffle(texts)
    texts = texts[:limit] if limit else texts
    partition = f"replay-{threshold}"
    await cache.clear(partition)
    seen: set[int] = set()
    counts = {"hits": 0, "correct": 0, "labelled": 0, "opportunities": 0}
    examples: list[dict[str, Any]] = []
    for text in tqdm(texts, desc=f"replay {threshold}", unit="prompt", disable=not progress):
        cluster = clusters[text]
        counts["opportunities"] += cluster in seen
        seen.add(cluster)
        lookup = await cache.explain(text, partition, threshold=threshold)
        if lookup.hit is None:
            await cache.store(text, "answer", partition)
            continue
        counts["hits"] += 1
        right = clusters.get(lookup.hit.prompt) == cluster
        counts["correct"] += right
        counts["labelled"] += frozenset((text, lookup.hit.prompt)) in negatives
        if not right and len(examples) < 10:
            examples.append(
                {"prompt": text, "served": lookup.hit.prompt, "score": lookup.hit.score}
            )
    await cache.clear(partition)
    hits = counts["hits"]
    return ReplayResult(
        threshold,
        len(texts),
        hits,
        counts["correct"],
        hits - counts["correct"],
        counts["labelled"],
        len(texts) - hits,
        counts["opportunities"],
        examples,
    )


def median_or_nan(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
