"""Export and import: a cache's entries survive the round trip, keyed as they were."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from reprise._admin.transfer import export_lines, import_lines
from reprise._cache import SemanticCache, ThresholdVerifier
from reprise._protocols import AdminStore
from tests.fakes import FakeEmbedder

CONVERSATION = [
    {"role": "system", "content": "You answer in French."},
    {"role": "user", "content": "What is the capital of Italy?"},
]
LONG = "Summarise this: " + " ".join(["word"] * 60)


class WindowedEmbedder(FakeEmbedder):
    """Reads 200 characters: a longer question is exact-only."""

    def fits(self, text: str) -> bool:
        return len(text) <= 200


def cache() -> SemanticCache:
    return SemanticCache(
        store=":memory:", embedder=WindowedEmbedder(), verifier=ThresholdVerifier(), ttl=None
    )


@pytest.fixture
async def source() -> AsyncIterator[SemanticCache]:
    async with cache() as filled:
        await filled.store(CONVERSATION, '{"answer": "Rome"}', "p1", ttl=600)
        await filled.store(LONG, '{"answer": "long"}', "p1")
        await filled.store("plain question", "plain", "p2", meta={"savings": {"model": "m"}})
        yield filled


async def test_a_round_trip_keeps_ids_contexts_and_expiry(source: SemanticCache) -> None:
    store = source.vector_store
    assert isinstance(store, AdminStore)
    lines = [line async for line in export_lines(store)]
    exported = {json.loads(line)["prompt"]: json.loads(line) for line in lines}
    assert exported["What is the capital of Italy?"]["context"] != ""
    assert exported[LONG]["context"].startswith("exact-only:")
    assert exported["plain question"]["model"] == "m"

    async with cache() as target:
        report = await import_lines(target, lines)
        assert (report.imported, report.skipped) == (3, 0)
        for prompt, partition in ((CONVERSATION, "p1"), (LONG, "p1"), ("plain question", "p2")):
            hit = await target.lookup(prompt, partition)
            assert hit is not None
            assert hit.id == (await source.lookup(prompt, partition)).id  # type: ignore[union-attr]
        rome = await target.vector_store.get(exported["What is the capital of Italy?"]["id"])
        assert rome is not None
        assert rome.expires_at == pytest.approx(time.time() + 600, abs=30)
        again = await import_lines(target, lines)
        assert again.reasons == {"already cached": 3}


async def test_unusable_lines_are_skipped_with_their_reason() -> None:
    lines = [
        b"[1, 2]",
        b'{"prompt": "q", "response": "r", "partition": 5}',
        b'{"prompt": "q", "response": "r", "context": "exact-only:x"}',
        b'{"prompt": "q", "response": "r", "expires_at": "tomorrow"}',
        b"",
        b'{"prompt": "q", "response": "r"}',
    ]
    seen: list[int] = []
    async with cache() as target:
        report = await import_lines(target, lines, progress=seen.append)
    assert report.imported == 1
    assert report.reasons == {
        "not a JSON object": 1,
        "partition, context and id must be strings": 1,
        "an exact-only entry needs its id": 1,
        "expires_at must be a Unix time or null": 1,
    }
    assert sum(seen) == len(lines)
