"""The benchmark's sweep gives the same decisions as fresh `explain` calls per threshold."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from reprise import Decision, Match, SemanticCache, ThresholdVerifier
from reprise._bench.data import Pair
from reprise._bench.pipeline import replay, sweep_pairs, unique_texts, warm_embeddings
from reprise._bench.vectors import SavedVectors
from reprise._protocols import TokenSource
from reprise._stores.embedded import EmbeddedStore
from tests.fakes import FakeEmbedder, at_distance, unit

BASE = unit("base")
PAIRS = [
    Pair("What is the capital of France?", "Which city is the capital of France?", 1, "g1"),
    Pair("What is 17 times 23?", "What is 18 times 23?", 0, "g2"),
    Pair("How do I bake bread?", "How do I bake bread?", 1, "g3"),
    Pair("Name a red fruit", "Tell me about tectonic plates", 0, "g4"),
    Pair("How tall is Everest?", "What is the height of Mount Everest?", 1, "g5"),
]
VECTORS = {
    "What is the capital of France?": BASE,
    "Which city is the capital of France?": at_distance(BASE, 0.04, "n1"),
    "What is 17 times 23?": unit("m"),
    "What is 18 times 23?": at_distance(unit("m"), 0.02, "n2"),
    "How tall is Everest?": unit("e"),
    "What is the height of Mount Everest?": at_distance(unit("e"), 0.12, "n3"),
}
THRESHOLDS = [0.0, 0.01, 0.03, 0.05, 0.1, 0.15, 0.3]


class NoNumbers:
    """A toy verifier: refuses candidates whose digits differ, else takes the nearest."""

    def __init__(self) -> None:
        self.calls = 0

    async def decide(
        self,
        prompt: str,
        candidates: Sequence[Match],
        threshold: float,
        *,
        tokens: TokenSource | None = None,
    ) -> Decision:
        self.calls += 1
        digits = [c for c in prompt if c.isdigit()]
        for m in candidates:
            if m.distance <= threshold and [c for c in m.entry.prompt if c.isdigit()] == digits:
                return Decision(m, "same digits")
        return Decision(None, "none")


@pytest.fixture
async def cache() -> AsyncIterator[SemanticCache]:
    embedder = FakeEmbedder(vectors=VECTORS)
    store = EmbeddedStore(":memory:")
    verifier = ThresholdVerifier()
    async with SemanticCache(store=store, embedder=embedder, verifier=verifier) as cache:
        yield cache


async def _fresh_decisions(cache: SemanticCache) -> np.ndarray:
    out = np.zeros((len(PAIRS), len(THRESHOLDS)), dtype=bool)
    for i, pair in enumerate(PAIRS):
        await cache.store(pair.text_a, "answer", f"fresh-{i}")
        for j, t in enumerate(THRESHOLDS):
            lookup = await cache.explain(pair.text_b, f"fresh-{i}", threshold=t)
            out[i, j] = lookup.hit is not None
    await cache.clear()
    return out


@pytest.mark.parametrize("verifier", [None, NoNumbers()])
async def test_the_sweep_matches_fresh_lookups_at_every_threshold(
    cache: SemanticCache, verifier: NoNumbers | None
) -> None:
    if verifier is not None:
        cache.verifier = verifier
    await warm_embeddings(cache, unique_texts(PAIRS), progress=False)

    result = await sweep_pairs(cache, PAIRS, THRESHOLDS, progress=False)

    assert (result.hits == await _fresh_decisions(cache)).all()
    assert result.exact.tolist() == [False, False, True, False, False]
    # The exact pair hits even at 0; the paraphrase at 0.12 only from 0.15 on.
    assert result.hits[2].all()
    assert result.hits[4].tolist() == [False] * 5 + [True, True]
    if verifier is not None:
        assert not result.hits[1].any()  # 17 vs 18: refused at every threshold
        assert verifier.calls > 0


async def test_warming_embeds_in_batches_so_lookups_embed_nothing(cache: SemanticCache) -> None:
    inner = cache.embedder.inner  # type: ignore[attr-defined]
    await warm_embeddings(cache, unique_texts(PAIRS), progress=False)
    calls = inner.calls

    await sweep_pairs(cache, PAIRS, THRESHOLDS, progress=False)

    assert calls == 1
    assert inner.calls == calls


async def test_replay_judges_hits_by_duplicate_cluster(cache: SemanticCache) -> None:
    pairs = [
        Pair("What is the capital of France?", "Which city is the capital of France?", 1),
        Pair("What is 17 times 23?", "What is 18 times 23?", 0),
        Pair("How tall is Everest?", "What is the height of Mount Everest?", 1),
    ]

    result = (await replay(cache, pairs, 0.05, seed=3, progress=False)).as_dict()

    # France pair (0.04) hits correctly; 17/18 (0.02) is a false hit on a labelled
    # negative; Everest (0.12) misses.
    assert result["lookups"] == 6
    assert (result["hits"], result["correct_hits"], result["false_hits"]) == (2, 1, 1)
    assert result["labelled_false_hits"] == 1
    assert result["misses"] == 4
    assert result["opportunities"] == 2
    assert result["recall"] == pytest.approx(0.5)


async def test_saved_vectors_answer_a_later_run_without_the_model(tmp_path: Path) -> None:
    texts = ["a text", "another text", "x" * 40]
    first = SavedVectors(FakeEmbedder(), tmp_path)
    vectors = await first.embed(texts)
    other = SavedVectors(FakeEmbedder(), tmp_path)  # a concurrent run, saving after
    await other.embed(["only in the other run"])
    first.save()
    other.save()

    inner = FakeEmbedder()
    later = SavedVectors(inner, tmp_path)
    again = await later.embed([*texts, "only in the other run"])

    assert inner.calls == 0
    assert np.array_equal(again[:3], vectors)
