"""The library's SemanticCache on a Redis URL, with the real local model: the whole path."""

from __future__ import annotations

import uuid

from reprise import SemanticCache, ThresholdVerifier


async def test_semantic_cache_on_redis_hits_misses_and_learns_from_a_mark(redis_url: str) -> None:
    # A generous Redis timeout (the default is 0.1 s): this tests behaviour, and
    # CI machines are shared; the gateway tests do the same.
    prefix = f"lib-{uuid.uuid4().hex[:8]}:"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={prefix}&timeout=2"
    cache = SemanticCache(store=url, verifier=ThresholdVerifier(), score_threshold=0.2, ttl=60)
    reworded = "What is the distance from the Earth to the Moon?"
    async with cache:
        entry_id = await cache.store("How far is the Moon from the Earth?", "384,400 km", "team")

        exact = await cache.lookup("How far is the Moon from the Earth?", "team")
        paraphrase = await cache.lookup(reworded, "team")
        other_team = await cache.lookup("How far is the Moon from the Earth?", "other")
        unrelated = await cache.lookup("How do I bake sourdough bread?", "team")
        marked = await cache.mark_wrong(entry_id, reworded)
        after_mark = await cache.lookup(reworded, "team")
        still_exact = await cache.lookup("How far is the Moon from the Earth?", "team")

    assert exact is not None
    assert (exact.tier, exact.response) == ("exact", "384,400 km")
    assert paraphrase is not None
    assert paraphrase.tier == "semantic"
    assert 0 < paraphrase.score <= 0.2
    assert (other_team, unrelated) == (None, None)
    assert marked is True
    assert after_mark is None  # the mark survives the round trip through Redis
    assert still_exact is not None
    assert still_exact.id == entry_id
