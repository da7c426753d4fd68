"""SemanticCache over the embedded store and the fake embedder: both tiers, TTL, feedback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from reprise import Decision, Match, SemanticCache, ThresholdVerifier
from reprise._exceptions import CacheError, EmbedderError
from reprise._protocols import TokenSource
from reprise._request import prompt_key
from reprise._stores.embedded import EmbeddedStore
from reprise.testing import ManualClock
from tests.fakes import FakeEmbedder, at_distance, unit

# The cache core under test, not a verifier: the plain similarity rule, named explicitly.
PLAIN = ThresholdVerifier()
BASE = unit("base")
VECTORS = {
    "What is the capital of France?": BASE,
    "Which city is the capital of France?": at_distance(BASE, 0.05, "near"),
    "Tell me the French capital": at_distance(BASE, 0.08, "near2"),
    "How do I bake bread?": at_distance(BASE, 0.6, "far"),
}


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder(vectors=VECTORS)


@pytest.fixture
async def store() -> AsyncIterator[EmbeddedStore]:
    store = EmbeddedStore(":memory:")
    yield store
    await store.aclose()


@pytest.fixture
async def cache(embedder: FakeEmbedder, store: EmbeddedStore) -> AsyncIterator[SemanticCache]:
    async with SemanticCache(
        store=store, embedder=embedder, score_threshold=0.1, verifier=PLAIN
    ) as cache:
        yield cache


async def test_an_exact_repeat_hits_without_embedding(
    cache: SemanticCache, store: EmbeddedStore
) -> None:
    await cache.store("What is the capital of France?", "Paris.")
    fresh = FakeEmbedder(vectors=VECTORS)  # a second cache: its LRU cannot hide a call
    other = SemanticCache(store=store, embedder=fresh, verifier=PLAIN)

    hit = await other.lookup("What is the capital of France?")

    assert hit is not None
    assert (hit.tier, hit.score, hit.response) == ("exact", 0.0, "Paris.")
    assert hit.id == prompt_key("", "What is the capital of France?")
    assert fresh.calls == 0


async def test_a_paraphrase_hits_the_semantic_tier_with_its_distance_as_score(
    cache: SemanticCache,
) -> None:
    await cache.store("What is the capital of France?", "Paris.")

    hit = await cache.lookup("Which city is the capital of France?")

    assert hit is not None
    assert hit.tier == "semantic"
    assert hit.prompt == "What is the capital of France?"
    assert hit.response == "Paris."
    assert hit.score == pytest.approx(0.05, abs=1e-4)


async def test_the_nearest_of_several_entries_is_served(cache: SemanticCache) -> None:
    await cache.store("Tell me the French capital", "far answer")
    await cache.store("What is the capital of France?", "near answer")

    hit = await cache.lookup("Which city is the capital of France?")

    assert hit is not None
    assert hit.response == "near answer"


async def test_beyond_the_threshold_is_a_miss_that_explain_can_see(
    embedder: FakeEmbedder, store: EmbeddedStore
) -> None:
    async with SemanticCache(
        store=store, embedder=embedder, score_threshold=0.04, verifier=PLAIN
    ) as cache:
        await cache.store("What is the capital of France?", "Paris.")

        lookup = await cache.explain("Which city is the capital of France?")

    assert lookup.hit is None
    assert lookup.best_distance == pytest.approx(0.05, abs=1e-4)
    assert lookup.candidates == 1
    assert "threshold" in lookup.reason


async def test_an_unrelated_prompt_misses(cache: SemanticCache) -> None:
    await cache.store("What is the capital of France?", "Paris.")

    lookup = await cache.explain("How do I bake bread?")

    assert lookup.hit is None
    assert lookup.candidates == 0


async def test_threshold_zero_serves_exact_repeats_only_and_never_embeds_a_lookup(
    embedder: FakeEmbedder, store: EmbeddedStore
) -> None:
    async with SemanticCache(
        store=store, embedder=embedder, score_threshold=0.0, verifier=PLAIN
    ) as cache:
        await cache.store("What is the capital of France?", "Paris.")
        calls = embedder.calls

        paraphrase = await cache.lookup("Which city is the capital of France?")
        repeat = await cache.lookup("What is the capital of France?")

    assert paraphrase is None
    assert repeat is not None
    assert repeat.tier == "exact"
    assert embedder.calls == calls


async def test_a_per_call_threshold_overrides_the_default(cache: SemanticCache) -> None:
    await cache.store("What is the capital of France?", "Paris.")

    strict = await cache.explain("Which city is the capital of France?", threshold=0.01)
    loose = await cache.explain("Which city is the capital of France?", threshold=0.2)

    assert strict.hit is None
    assert loose.hit is not None


async def test_partitions_never_share_answers(cache: SemanticCache) -> None:
    await cache.store("What is the capital of France?", "Paris.", partition="model-a")

    assert await cache.lookup("What is the capital of France?", partition="model-b") is None
    assert await cache.lookup("Which city is the capital of France?", partition="model-b") is None
    assert await cache.lookup("What is the capital of France?") is None
    assert await cache.lookup("What is the capital of France?", partition="model-a") is not None


async def test_entries_expire_after_their_ttl(embedder: FakeEmbedder) -> None:
    clock = ManualClock()
    cache = SemanticCache(store=":memory:", embedder=embedder, ttl=0.5, verifier=PLAIN, clock=clock)
    async with cache:
        await cache.store("What is the capital of France?", "Paris.")
        await cache.store("How do I bake bread?", "Knead.", ttl=60)
        assert await cache.lookup("Which city is the capital of France?") is not None

        clock.advance(0.7)

        assert await cache.lookup("What is the capital of France?") is None
        assert await cache.lookup("Which city is the capital of France?") is None
        assert await cache.lookup("How do I bake bread?") is not None


async def test_an_entry_without_ttl_gets_no_expiry(
    embedder: FakeEmbedder, store: EmbeddedStore
) -> None:
    async with SemanticCache(store=store, embedder=embedder, ttl=None, verifier=PLAIN) as cache:
        entry_id = await cache.store("What is the capital of France?", "Paris.")
        entry = await store.get(entry_id)
    assert entry is not None
    assert entry.expires_at is None


async def test_storing_the_same_prompt_again_replaces_the_answer(cache: SemanticCache) -> None:
    first = await cache.store("What is the capital of France?", "Lyon?")
    second = await cache.store("What is the capital of France?", "Paris.")

    hit = await cache.lookup("Which city is the capital of France?")

    assert first == second
    assert hit is not None
    assert hit.response == "Paris."


async def test_delete_removes_the_entry_from_both_tiers(cache: SemanticCache) -> None:
    entry_id = await cache.store("What is the capital of France?", "Paris.")

    assert await cache.delete(entry_id) is True
    assert await cache.delete(entry_id) is False
    assert await cache.lookup("What is the capital of France?") is None
    assert await cache.lookup("Which city is the capital of France?") is None


async def test_clear_a_partition_or_everything(cache: SemanticCache) -> None:
    await cache.store("What is the capital of France?", "Paris.", partition="a")
    await cache.store("How do I bake bread?", "Knead.", partition="a")
    await cache.store("What is the capital of France?", "Paris.", partition="b")

    assert await cache.clear("a") == 2
    assert await cache.lookup("What is the capital of France?", partition="a") is None
    assert await cache.lookup("What is the capital of France?", partition="b") is not None
    assert await cache.clear() == 1
    assert await cache.lookup("What is the capital of France?", partition="b") is None


async def test_meta_is_stored_and_returned_with_the_hit(cache: SemanticCache) -> None:
    await cache.store("What is the capital of France?", "Paris.", meta={"model": "gpt-x"})

    hit = await cache.lookup("Which city is the capital of France?")

    assert hit is not None
    assert hit.meta == {"model": "gpt-x"}


async def test_mark_wrong_for_a_paraphrase_stops_serving_it_to_that_prompt_only(
    cache: SemanticCache,
) -> None:
    entry_id = await cache.store("What is the capital of France?", "Paris.")

    assert await cache.mark_wrong(entry_id, "Tell me the French capital") is True

    assert await cache.lookup("Tell me the French capital") is None
    nearer = await cache.lookup("Which city is the capital of France?")
    own = await cache.lookup("What is the capital of France?")
    assert nearer is not None
    assert nearer.id == entry_id
    assert own is not None
    assert own.response == "Paris."


async def test_mark_wrong_twice_keeps_both_rejections(cache: SemanticCache) -> None:
    entry_id = await cache.store("What is the capital of France?", "Paris.")

    await cache.mark_wrong(entry_id, "Which city is the capital of France?")
    await cache.mark_wrong(entry_id, "Tell me the French capital")

    assert await cache.lookup("Which city is the capital of France?") is None
    assert await cache.lookup("Tell me the French capital") is None


async def test_mark_wrong_for_its_own_prompt_deletes_the_entry(cache: SemanticCache) -> None:
    entry_id = await cache.store("What is the capital of France?", "Paris.")

    assert await cache.mark_wrong(entry_id, "What is the capital of France?") is True

    assert await cache.lookup("What is the capital of France?") is None
    assert await cache.mark_wrong(entry_id, "anything") is False


async def test_a_custom_verifier_decides_among_the_candidates(
    embedder: FakeEmbedder, store: EmbeddedStore
) -> None:
    seen: list[list[str]] = []

    class RejectAll:
        async def decide(
            self,
            prompt: str,
            candidates: Sequence[Match],
            threshold: float,
            *,
            tokens: TokenSource | None = None,
        ) -> Decision:
            seen.append([m.entry.prompt for m in candidates])
            return Decision(None, "rejected by test")

    async with SemanticCache(store=store, embedder=embedder, verifier=RejectAll()) as cache:
        await cache.store("What is the capital of France?", "Paris.")
        lookup = await cache.explain("Which city is the capital of France?")

    assert lookup.hit is None
    assert lookup.reason == "rejected by test"
    assert seen == [["What is the capital of France?"]]


async def test_an_embedder_failure_is_a_cache_error(
    cache: SemanticCache, embedder: FakeEmbedder
) -> None:
    embedder.fail = True
    with pytest.raises(CacheError):
        await cache.lookup("never seen before")
    with pytest.raises(EmbedderError):
        await cache.store("never seen before either", "x")


async def test_aclose_closes_store_and_embedder(
    embedder: FakeEmbedder, store: EmbeddedStore
) -> None:
    cache = SemanticCache(store=store, embedder=embedder, verifier=PLAIN)
    await cache.open()
    await cache.aclose()
    assert embedder.closed


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 2.0])
def test_a_threshold_outside_zero_to_one_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="cosine distance"):
        SemanticCache(
            score_threshold=threshold, store=":memory:", embedder=FakeEmbedder(), verifier=PLAIN
        )


@pytest.mark.parametrize("ttl", [0, -5])
def test_a_ttl_that_is_not_positive_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        SemanticCache(ttl=ttl, store=":memory:", embedder=FakeEmbedder(), verifier=PLAIN)


def test_a_string_store_path_makes_an_embedded_store() -> None:
    cache = SemanticCache(store=":memory:", embedder=FakeEmbedder(), verifier=PLAIN)
    assert isinstance(cache.vector_store, EmbeddedStore)


# -- conversations and long prompts: the question by meaning, the rest exactly


def chat(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


WATER = chat(("user", "What is water made of?"), ("assistant", "Hydrogen and oxygen."))
PARIS = chat(("user", "Tell me about Paris."), ("assistant", "It is the capital of France."))


async def test_a_rewording_of_the_follow_up_in_the_same_conversation_hits(
    cache: SemanticCache,
) -> None:
    await cache.store([*WATER, *chat(("user", "What is the capital of France?"))], "Paris.")

    hit = await cache.lookup([*WATER, *chat(("user", "Which city is the capital of France?"))])

    assert hit is not None
    assert (hit.tier, hit.response) == ("semantic", "Paris.")
    lookup = await cache.explain([*WATER, *chat(("user", "Tell me the French capital"))])
    assert lookup.reason.startswith("context: exact (2 messages, 42 chars); question: distance")


async def test_the_same_follow_up_after_another_conversation_or_alone_misses(
    cache: SemanticCache,
) -> None:
    question = chat(("user", "What is the capital of France?"))
    await cache.store([*WATER, *question], "Paris.")

    assert await cache.lookup([*PARIS, *question]) is None
    assert await cache.lookup("What is the capital of France?") is None
    miss = await cache.explain([*PARIS, *question])
    context, question = miss.reason.split("; ")
    assert context == "context: exact (2 messages, 48 chars)"
    assert question == "question: no cached question within 0.17 in this context"


async def test_an_exact_repeat_of_a_conversation_hits_the_exact_tier(cache: SemanticCache) -> None:
    conversation = [*WATER, *chat(("user", "And heavy water?"))]
    entry_id = await cache.store(conversation, "Deuterium oxide.")

    hit = await cache.lookup(list(conversation))

    assert hit is not None
    assert (hit.id, hit.tier, hit.prompt) == (entry_id, "exact", "And heavy water?")


async def test_system_messages_count_unless_the_cache_ignores_them(
    embedder: FakeEmbedder, store: EmbeddedStore
) -> None:
    support = chat(("system", "You are a support bot."), ("user", "What is the capital of France?"))
    pirate = chat(("system", "You are a pirate."), ("user", "Which city is the capital of France?"))
    async with SemanticCache(store=store, embedder=embedder, verifier=PLAIN) as strict:
        await strict.store(support, "Paris.")
        assert await strict.lookup(pirate) is None
    ignoring = SemanticCache(
        store=store, embedder=embedder, verifier=PLAIN, ignore_system_messages=True
    )
    async with ignoring:
        await ignoring.store(support, "Paris.")
        hit = await ignoring.lookup(pirate)
    assert hit is not None
    assert hit.prompt == "What is the capital of France?"


class WindowedEmbedder(FakeEmbedder):
    """A fake whose window holds 40 characters."""

    def fits(self, text: str) -> bool:
        return len(text) <= 40


async def test_a_question_past_the_window_is_exact_only_and_never_embedded(
    store: EmbeddedStore,
) -> None:
    embedder = WindowedEmbedder()
    long = "Please explain in detail how photosynthesis converts light to sugar?"
    async with SemanticCache(store=store, embedder=embedder, verifier=PLAIN) as cache:
        await cache.store(long, "Chlorophyll...")
        calls = embedder.calls

        exact = await cache.lookup(long)
        reworded = await cache.explain(long.replace("Please explain", "Explain"))
        short = await cache.explain("How does photosynthesis work?")

    assert exact is not None
    assert exact.tier == "exact"
    assert reworded.hit is None
    assert "longer than the model reads: exact only" in reworded.reason
    assert short.hit is None  # the long entry is never a candidate of a search
    assert short.candidates == 0
    assert embedder.calls == calls + 1  # only the short question was embedded
