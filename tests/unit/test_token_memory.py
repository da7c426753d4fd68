"""The token vectors the cache hands its verifier: remembered from its own embedding calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reprise import SemanticCache
from reprise._embedders.tokens import TokenMemory, token_memory
from reprise._protocols import Decision, Match, TokenSource, Vector
from tests.fakes import FakeEmbedder


@dataclass(frozen=True)
class _Tokens:
    tokens: list[str]
    vectors: Vector
    sentence: Vector


class FakeTokenEmbedder(FakeEmbedder):
    """A fake whose model call also gives one vector per word, as the local model does."""

    def __init__(self) -> None:
        super().__init__()
        self.token_calls: list[list[str]] = []

    async def embed_tokens(self, texts: Sequence[str]) -> list[_Tokens]:
        self.token_calls.append(list(texts))
        out = []
        for text in texts:
            words = text.lower().split()
            vectors = np.stack([self.vector(w) for w in words]) if words else np.zeros((0, 64))
            out.append(_Tokens(words, vectors.astype(np.float32), self.vector(text)))
        return out


async def test_embedding_remembers_token_vectors_and_fetches_the_rest_in_one_call() -> None:
    model = FakeTokenEmbedder()
    memory = TokenMemory(model, size=2)
    sentences = await memory.embed(["cheap flights", "cheap trains"])
    assert np.allclose(sentences[0], model.vector("cheap flights"))

    found = await memory.token_vectors(["cheap trains", "cheap flights", "a b", "c d"])

    assert model.token_calls == [["cheap flights", "cheap trains"], ["a b", "c d"]]
    assert [list(t.tokens) for t in found] == [["cheap", "trains"], ["cheap", "flights"],
                                               ["a", "b"], ["c", "d"]]  # fmt: skip
    assert np.allclose(found[0].vectors[1], model.vector("trains"), atol=1e-3)
    # size 2: the oldest texts were forgotten and cost a call again
    await memory.token_vectors(["cheap flights"])
    assert model.token_calls[-1] == ["cheap flights"]


def test_only_an_embedder_with_token_vectors_gets_a_memory() -> None:
    assert token_memory(FakeEmbedder()) is None
    assert isinstance(token_memory(FakeTokenEmbedder()), TokenMemory)


class Recording:
    """A verifier that reads the token vectors the cache hands it, then serves the nearest."""

    def __init__(self) -> None:
        self.handed: list[TokenSource | None] = []

    async def decide(
        self,
        prompt: str,
        candidates: Sequence[Match],
        threshold: float,
        *,
        tokens: TokenSource | None = None,
    ) -> Decision:
        self.handed.append(tokens)
        if tokens is not None:
            await tokens.token_vectors([prompt, *(m.entry.prompt for m in candidates)])
        return Decision(candidates[0], "nearest")


async def test_a_stored_entry_costs_the_verifier_no_model_call() -> None:
    model = FakeTokenEmbedder()
    verifier = Recording()
    async with SemanticCache(store=":memory:", embedder=model, verifier=verifier) as cache:
        await cache.store("how do I bake bread at home", "answer")
        hit = await cache.lookup("how can I bake bread at home")

    assert hit is not None
    assert verifier.handed == [cache.tokens]
    # one call to store, one to look up; the verifier's words were both remembered
    assert model.token_calls == [["how do I bake bread at home"], ["how can I bake bread at home"]]


async def _replicas(writer_model: object, reader_model: FakeTokenEmbedder) -> tuple[Any, ...]:
    """(store, writer, reader): two caches on one store, each with its own token memory."""
    from reprise._stores.embedded import EmbeddedStore

    store = EmbeddedStore(":memory:")
    writer = SemanticCache(store=store, embedder=writer_model)  # type: ignore[arg-type]
    reader = SemanticCache(store=store, embedder=reader_model, verifier=Recording())
    await writer.open()
    return store, writer, reader


async def test_an_entry_stored_elsewhere_brings_its_words_along() -> None:
    """Another replica (a fresh token memory over the same store) judges it with no extra call."""
    model = FakeTokenEmbedder()
    _, writer, reader = await _replicas(FakeTokenEmbedder(), model)
    await writer.store("how do I bake bread at home", "answer")

    assert await reader.lookup("how can I bake bread at home") is not None
    assert model.token_calls == [["how can I bake bread at home"]]
    found = await reader.tokens.token_vectors(["how do I bake bread at home"])
    assert list(found[0].tokens) == ["how", "do", "i", "bake", "bread", "at", "home"]
    assert np.allclose(found[0].vectors[3], model.vector("bake"), atol=1e-3)
    await writer.aclose()


async def test_an_entry_stored_without_words_costs_one_call_for_them() -> None:
    """Written by a remote-style embedder (or before token vectors were stored): as before."""
    model = FakeTokenEmbedder()
    _, writer, reader = await _replicas(FakeEmbedder(), model)
    await writer.store("how do I bake bread at home", "answer")

    assert await reader.lookup("how can I bake bread at home") is not None
    assert model.token_calls == [["how can I bake bread at home"], ["how do I bake bread at home"]]
    await writer.aclose()


async def test_a_remote_style_embedder_hands_no_token_vectors() -> None:
    verifier = Recording()
    async with SemanticCache(store=":memory:", embedder=FakeEmbedder(), verifier=verifier) as c:
        await c.store("how do I bake bread at home", "answer")
        assert await c.lookup("how can I bake bread at home") is not None
    assert verifier.handed == [None]


async def test_a_forgotten_entry_is_read_back_from_the_store_without_a_call() -> None:
    model = FakeTokenEmbedder()
    async with SemanticCache(store=":memory:", embedder=model, verifier=Recording()) as cache:
        await cache.store("how do I bake bread at home", "answer")
        assert isinstance(cache.tokens, TokenMemory)
        cache.tokens.forget()
        assert await cache.lookup("how can I bake bread at home") is not None
        assert cache.tokens.knows("how do I bake bread at home")
    assert model.token_calls[-1] == ["how can I bake bread at home"]


async def test_the_memory_is_bounded_by_bytes_as_well_as_texts() -> None:
    model = FakeTokenEmbedder()
    memory = TokenMemory(model, size=100, max_bytes=3_000)
    long = "one two three four five six"  # 6 x 64 float16 = 768 bytes, plus the overheads
    await memory.embed([long])
    await memory.embed(["a b", "c d", "e f", "g h", "i j"])

    assert memory.nbytes <= 3_000
    assert memory.texts == 4  # the oldest two went: the long text, then "a b"
    await memory.token_vectors(["i j", "c d", long, "a b"])
    assert model.token_calls[-1] == [long, "a b"]
    memory.forget()
    assert (memory.texts, memory.nbytes) == (0, 0)


async def test_garbled_stored_words_are_ignored_and_cost_one_call() -> None:
    model = FakeTokenEmbedder()
    store, writer, reader = await _replicas(FakeTokenEmbedder(), model)
    entry_id = await writer.store("how do I bake bread at home", "answer")
    entry = await store.get(entry_id)
    (blob,) = (await store.stored_tokens([entry_id])).values()
    await store.upsert(dataclasses.replace(entry, tokens=blob[:-3] + b"abc"))

    hit = await reader.lookup("how can I bake bread at home")

    assert hit is not None
    assert hit.response == "answer"
    assert model.token_calls[-1] == ["how do I bake bread at home"]
    await writer.aclose()


async def test_words_stored_by_another_model_are_not_used() -> None:
    class OtherModel(FakeTokenEmbedder):
        model_id = "another-model"

    model = FakeTokenEmbedder()
    _, writer, reader = await _replicas(OtherModel(), model)
    await writer.store("how do I bake bread at home", "answer")

    assert await reader.lookup("how can I bake bread at home") is not None
    assert model.token_calls[-1] == ["how do I bake bread at home"]
    await writer.aclose()


async def test_a_long_prompts_words_are_not_stored() -> None:
    from reprise._embedders.token_blob import MAX_PIECES

    store, writer, _ = await _replicas(FakeTokenEmbedder(), FakeTokenEmbedder())
    short = await writer.store(" ".join(f"w{i}" for i in range(MAX_PIECES)), "answer")
    long = await writer.store(" ".join(f"w{i}" for i in range(MAX_PIECES + 1)), "answer")

    assert set(await store.stored_tokens([short, long])) == {short}
    await writer.aclose()


async def test_an_exact_only_entry_stores_no_words() -> None:
    store, writer, _ = await _replicas(FakeTokenEmbedder(), FakeTokenEmbedder())
    entry_id = await writer.store([{"role": "system", "content": "be brief"}], "answer")

    assert await store.stored_tokens([entry_id]) == {}
    await writer.aclose()


async def test_a_marked_entry_keeps_its_words() -> None:
    store, writer, _ = await _replicas(FakeTokenEmbedder(), FakeTokenEmbedder())
    entry_id = await writer.store("how do I bake bread at home", "answer")
    stored = await store.stored_tokens([entry_id])

    assert await writer.mark_wrong(entry_id, "how do I bake cake at home")
    assert await store.stored_tokens([entry_id]) == stored
    await writer.aclose()


async def test_an_entry_marked_by_a_replica_that_never_saw_it_keeps_its_words() -> None:
    store, writer, reader = await _replicas(FakeTokenEmbedder(), FakeTokenEmbedder())
    entry_id = await writer.store("how do I bake bread at home", "answer")
    stored = await store.stored_tokens([entry_id])
    assert stored

    assert await reader.mark_wrong(entry_id, "how do I bake cake at home")
    assert await store.stored_tokens([entry_id]) == stored
    await writer.aclose()
