"""The token vectors the cache hands its verifier: remembered from its own embedding calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


async def test_an_entry_stored_elsewhere_costs_one_call_for_its_words() -> None:
    from reprise._stores.embedded import EmbeddedStore

    store = EmbeddedStore(":memory:")
    writer = SemanticCache(store=store, embedder=FakeTokenEmbedder())
    model = FakeTokenEmbedder()
    reader = SemanticCache(store=store, embedder=model, verifier=Recording())
    await writer.open()
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


async def test_a_forgotten_entry_costs_one_call_with_the_prompt_remembered() -> None:
    model = FakeTokenEmbedder()
    async with SemanticCache(store=":memory:", embedder=model, verifier=Recording()) as cache:
        await cache.store("how do I bake bread at home", "answer")
        assert isinstance(cache.tokens, TokenMemory)
        cache.tokens.forget()
        assert await cache.lookup("how can I bake bread at home") is not None
    assert model.token_calls[-1] == ["how do I bake bread at home"]


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
