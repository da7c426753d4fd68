"""The cache end to end in-process: the real local model and an on-disk store.

Distances measured with all-MiniLM-L6-v2: the paraphrase is ~0.058 from the
cached prompt, "...of Germany?" ~0.34, an unrelated question ~0.87. The
assertions leave room either side, so an ONNX Runtime upgrade that moves
distances in the third decimal does not break them. The plain threshold
verifier is named explicitly: these tests pin the model's distances and the
store, not a verifier's judgement.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise import SemanticCache, ThresholdVerifier

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
# Plain similarity, at the stricter threshold it needs.
PLAIN = ThresholdVerifier()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "reprise-data"


async def test_a_paraphrase_hits_at_a_plain_threshold(data_dir: Path) -> None:
    async with SemanticCache(store=data_dir, verifier=PLAIN, score_threshold=0.1) as cache:
        await cache.store(FRANCE, "Paris.")

        hit = await cache.lookup(PARAPHRASE)

    assert hit is not None
    assert hit.tier == "semantic"
    assert hit.response == "Paris."
    assert 0.03 < hit.score < 0.09


async def test_the_defaults_serve_a_rewording_and_refuse_a_reversal(data_dir: Path) -> None:
    async with SemanticCache(store=data_dir) as cache:
        assert cache.score_threshold == 0.2
        await cache.store("How do I reverse a list in Python?", "reversed()")
        await cache.store("How do I convert Celsius to Fahrenheit?", "F = C * 9/5 + 32")
        reworded = await cache.explain("What's the way to reverse a list in Python?")
        reversed_ = await cache.explain("How do I convert Fahrenheit to Celsius?")

    assert reworded.hit is not None, reworded.reason
    assert reworded.hit.tier == "semantic"
    assert reversed_.hit is None
    assert reversed_.best_distance is not None
    assert reversed_.best_distance < 0.02
    assert "direction" in reversed_.reason


async def test_another_country_and_another_topic_miss(data_dir: Path) -> None:
    async with SemanticCache(store=data_dir, verifier=PLAIN, score_threshold=0.1) as cache:
        await cache.store(FRANCE, "Paris.")
        germany = await cache.explain("What is the capital of Germany?")
        bread = await cache.explain("How do I bake sourdough bread?")

    assert germany.hit is None
    assert bread.hit is None
    assert bread.candidates == 0


async def test_the_cache_answers_after_a_restart_from_its_data_directory(data_dir: Path) -> None:
    async with SemanticCache(store=data_dir, verifier=PLAIN, score_threshold=0.1) as cache:
        await cache.store(FRANCE, "Paris.")
    async with SemanticCache(store=data_dir, verifier=PLAIN, score_threshold=0.1) as cache:
        exact = await cache.lookup(FRANCE)
        semantic = await cache.lookup(PARAPHRASE)

    assert exact is not None
    assert exact.tier == "exact"
    assert semantic is not None
    assert semantic.response == "Paris."


async def test_after_a_restart_the_verifier_judges_a_stored_entry_as_before_with_one_call(
    data_dir: Path,
) -> None:
    """The entry's token vectors come back from disk: one model call (the lookup's own
    question), and the learned verifier's score is the one it gave before the restart
    (this pair is close to its cut-off: rejected at 2.91 against 3.09)."""
    from reprise import LocalEmbedder

    moon = "How far is the Moon from the Earth?"
    reworded = "What is the distance from the Earth to the Moon?"
    async with SemanticCache(store=data_dir) as cache:
        await cache.store(moon, "384,400 km")
        before = await cache.explain(reworded)

    model = LocalEmbedder(threads=1)
    calls: list[list[str]] = []
    embed_tokens = model.embed_tokens

    async def counted(texts: list[str]) -> object:
        calls.append(list(texts))
        return await embed_tokens(texts)

    model.embed_tokens = counted  # type: ignore[assignment,method-assign]
    async with SemanticCache(store=data_dir, embedder=model) as restarted:
        after = await restarted.explain(reworded)

    assert calls == [[reworded]]
    assert after.candidates == 1
    assert "head score" in after.reason
    assert after.reason == before.reason
