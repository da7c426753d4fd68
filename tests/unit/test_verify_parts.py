"""The verifier's parts as pure functions: alignment, features, combiner, feedback limits."""

from __future__ import annotations

import numpy as np
import pytest

from reprise import Entry, Match
from reprise._bench.verifiers import VERIFIERS
from reprise._verify.align import Words, alignment, merge_pieces
from reprise._verify.feedback import entry_limit, tightened, within_limit
from reprise._verify.head import load_head
from reprise._verify.model import (
    FEATURES,
    LEXICAL_FEATURES,
    features,
    interpolate_cutoff,
    load_combiners,
)
from reprise._verify.verifier import LearnedVerifier, RuleVerifier


def _vec(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_word_pieces_merge_into_words_with_mean_vectors() -> None:
    vectors = np.stack([_vec(1, 0, 0), _vec(0, 1, 0), _vec(0, 0, 1)])
    words = merge_pieces(["vegan", "##ism", "?"], vectors)
    assert words.words == ("veganism", "?")
    assert words.content == (True, False)
    assert np.allclose(words.vectors[0], _vec(1, 1, 0), atol=1e-6)


def test_word_pieces_merge_as_one_reduceat_over_all_words_would() -> None:
    # one-, two- and three-piece words, a leading continuation, float16 input as remembered
    tokens = ["##x", "un", "##break", "##able", "glass", "is", "rare", "##ly", "seen"]
    vectors = np.random.default_rng(7).standard_normal((len(tokens), 16)).astype(np.float16)
    words = merge_pieces(tokens, vectors)
    assert words.words == ("##x", "unbreakable", "glass", "is", "rarely", "seen")
    summed = np.add.reduceat(vectors.astype(np.float32), [0, 1, 4, 5, 6, 8], axis=0)
    expected = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    assert words.vectors.dtype == np.float32
    assert words.vectors.tobytes() == expected.astype(np.float32).tobytes()


def test_word_pieces_merge_bit_for_bit_on_longer_prompts() -> None:
    # as the model's vectors come: float16 from the token memory, or float32
    rng = np.random.default_rng(11)
    for case in range(40):
        n = int(rng.integers(1, 60))
        tokens = [("##" if i and rng.random() < 0.3 else "") + f"w{i}" for i in range(n)]
        vectors = rng.standard_normal((n, 384)).astype(np.float16 if case % 2 else np.float32)
        starts = [i for i, t in enumerate(tokens) if not t.startswith("##")]
        summed = np.add.reduceat(vectors.astype(np.float32), starts, axis=0)
        expected = summed / np.linalg.norm(summed, axis=1, keepdims=True)
        assert merge_pieces(tokens, vectors).vectors.tobytes() == expected.tobytes()


def test_alignment_finds_the_word_without_a_counterpart() -> None:
    same = Words(("cheap", "flights"), np.stack([_vec(1, 0, 0), _vec(0, 1, 0)]), (True, True))
    swapped = Words(("cheap", "trains"), np.stack([_vec(1, 0, 0), _vec(0, 0, 1)]), (True, True))
    assert alignment(same, same)[0] == pytest.approx(0.0, abs=1e-6)
    gap_max, gap_min_side, _, count, _ = alignment(same, swapped)
    assert gap_max == pytest.approx(1.0, abs=1e-6)
    assert gap_min_side == pytest.approx(1.0, abs=1e-6)  # both sides lack something
    assert count == 2


def test_features_have_the_declared_length() -> None:
    words = Words(("hi",), np.stack([_vec(1, 0)]), (True,))
    assert len(features("What is 2+2?", "What is 2+3?", 0.01)) == len(LEXICAL_FEATURES)
    assert len(features("a", "b", 0.01, words, words)) == len(FEATURES)


def test_the_committed_combiners_load_and_rank_sensibly() -> None:
    combiners = load_combiners()
    assert set(combiners) == {"align", "lexical"}
    lexical = combiners["lexical"]
    near = lexical.logit(features("How do I bake bread?", "How can I bake bread?", 0.02))
    far = lexical.logit(features("How do I bake bread?", "How do I grow wheat?", 0.25))
    assert near > far
    # stricter targets need higher scores
    assert lexical.cutoff(0.95) >= lexical.cutoff(0.90) >= lexical.cutoff(0.85)


def test_the_committed_head_is_symmetric_and_ranks_sensibly() -> None:
    combiner = load_combiners()["align"]
    head = load_head(combiner)
    assert head is not None
    assert head.blend is not None
    rng = np.random.default_rng(0)
    dims = head.heads[0].tok_w.shape[0] // 2 - 1

    def words(n: int) -> Words:
        v = rng.normal(size=(n, dims)).astype(np.float32)
        return Words(("w",) * n, v / np.linalg.norm(v, axis=1, keepdims=True), (True,) * n)

    a, b = words(6), words(4)
    x = features("How do I bake bread?", "How can I bake bread?", 0.02, a, b)
    assert head.logit(a, b, x) == pytest.approx(head.logit(b, a, x), abs=1e-4)
    weight = head.blend[0]
    assert weight > 0
    blended = head.logit(a, b, x) + weight * combiner.logit(x)
    assert head.score(a, b, x) == pytest.approx(blended)
    # the same words on both sides and a tiny distance beat unrelated words far apart
    near = head.logit(a, a, features("How do I bake bread?", "How can I bake bread?", 0.02, a, a))
    far = head.logit(a, b, features("How do I bake bread?", "How do I grow wheat?", 0.19, a, b))
    assert near > far
    assert head.cutoff(0.95) >= head.cutoff(0.90) >= head.cutoff(0.85)


def test_cutoffs_interpolate_and_never_loosen_towards_an_unreached_target() -> None:
    cutoffs = {0.80: 0.0, 0.85: 1.0, 0.90: 2.0, 0.95: float("inf")}
    assert interpolate_cutoff(cutoffs, 0.5) == 0.0  # below the lowest: its cut-off
    assert interpolate_cutoff(cutoffs, 0.875) == pytest.approx(1.5)
    # past the last reached point, along the last slope (20 per unit), not a jump to inf
    assert interpolate_cutoff(cutoffs, 0.92) == pytest.approx(2.4)
    assert interpolate_cutoff(cutoffs, 0.95) == float("inf")
    assert interpolate_cutoff(cutoffs, 0.99) == float("inf")
    targets = [0.8 + 0.01 * i for i in range(15)]
    values = [interpolate_cutoff(cutoffs, t) for t in targets]
    assert values == sorted(values)


def test_feedback_limits_only_tighten() -> None:
    meta = tightened({}, 0.08)
    limit = entry_limit(meta)
    assert limit is not None
    assert limit < 0.08
    assert not within_limit(meta, 0.08)
    assert within_limit(meta, limit)
    assert entry_limit(tightened(meta, 0.5)) == limit
    assert within_limit({}, 0.99)


def _match(prompt: str, distance: float) -> Match:
    return Match(Entry(id=prompt, partition="", prompt=prompt, response="r"), distance)


async def test_rule_verifier_skips_conflicting_candidates_for_the_next() -> None:
    decision = await RuleVerifier().decide(
        "What is 17 times 23?",
        [_match("What is 18 times 23?", 0.005), _match("what is 17 times 23", 0.02)],
        0.1,
    )
    assert decision.match is not None
    assert decision.match.entry.prompt == "what is 17 times 23"


async def test_learned_verifier_reports_why_it_refused() -> None:
    verifier = LearnedVerifier()  # no token vectors handed: the lexical combiner
    decision = await verifier.decide(
        "Sort the list in descending order", [_match("Sort the list in ascending order", 0.01)], 0.1
    )
    assert decision.match is None
    assert "antonym" in decision.reason
    beyond = await verifier.decide("x", [_match("y", 0.3)], 0.1)
    assert (beyond.match, beyond.reason) == (None, "no candidate within the threshold")


def test_target_precision_is_validated() -> None:
    with pytest.raises(ValueError, match="target_precision"):
        LearnedVerifier(1.0)


def test_every_named_configuration_resolves() -> None:
    for name, make in VERIFIERS.items():
        assert hasattr(make(), "decide"), name


def test_a_rewording_keeps_the_order_of_its_content_words() -> None:
    from reprise._verify.model import same_order

    assert same_order("lock my screen on a Mac", "lock the screen on my Mac")
    assert same_order("What is the capital city of France?", "Which city is the capital of France?")
    assert not same_order("How many cups are in a gallon?", "How many gallons are in a cup?")


async def test_same_words_in_another_order_are_not_served_as_a_rewording() -> None:
    decision = await LearnedVerifier().decide(
        "How many cups are in a gallon?", [_match("How many gallons are in a cup?", 0.01)], 0.2
    )
    assert "same content words" not in decision.reason


async def test_a_near_duplicate_is_served_unless_a_rule_vetoes_it() -> None:
    verifier = LearnedVerifier()
    near = await verifier.decide(
        "How should I write a cover letter?", [_match("Cover letter writing advice", 0.01)], 0.2
    )
    assert near.match is not None
    assert "near duplicate" in near.reason
    vetoed = await verifier.decide(
        "Convert 5 km to miles", [_match("Convert 50 km to miles", 0.01)], 0.2
    )
    assert vetoed.match is None
    assert "number" in vetoed.reason
