"""The learned combiner: a logistic regression over cheap features of a candidate pair.

Its weights are small and committed (`reprise/_data/verifier.json`), written by
`scripts/train_verifier.py`, which reproduces them from a mix of the dev sets. At
run time there is no training and no file outside the package.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from reprise._verify.align import ALIGN_FEATURES, Words, alignment
from reprise._verify.rules import (
    CHECKS,
    Tokens,
    content_words,
    is_content,
    tokenize,
)
from reprise._verify.surface import same_words

LEXICAL_FEATURES: tuple[str, ...] = (
    "distance",
    "distance_sq",
    *(f"rule_{name}" for name in CHECKS),
    "jaccard",
    "only_prompt",
    "only_cached",
    "length_ratio",
    "log_length",
    "question_words_differ",
    "first_question_word_differs",
    "function_words_differ",
    "same_words",
)
FEATURES: tuple[str, ...] = (*LEXICAL_FEATURES, *ALIGN_FEATURES)


def _stem(word: str) -> str:
    # Enough to make "doctor"/"doctors" and "dog"/"dogs" the same word.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


# What a question asks for: "What is X?" and "How does X work?" want different answers.
QUESTION_WORDS = frozenset(("what", "how", "why", "where", "who", "whom", "whose", "when", "which"))
# ...except these, which ask for the same thing ("Which city is the capital of France?").
_SAME_QUESTION = {"which": "what"}
# Words too common to tell two requests apart, even among function words.
_FILLER = frozenset(
    ("a", "an", "the", "is", "are", "was", "were", "be", "do", "does", "did", "i", "you", "we")
)


def _function_word(word: str) -> bool:
    return not is_content(word) and word not in _FILLER and word.isalpha()


def lexical(a: Tokens, b: Tokens) -> tuple[float, ...]:
    ca = {_stem(w) for w in content_words(a)}
    cb = {_stem(w) for w in content_words(b)}
    union = ca | cb
    shorter, longer = sorted((len(ca), len(cb)))
    qa = [_SAME_QUESTION.get(w, w) for w in a.words if w in QUESTION_WORDS]
    qb = [_SAME_QUESTION.get(w, w) for w in b.words if w in QUESTION_WORDS]
    fa = Counter(w for w in a.words if _function_word(w))
    fb = Counter(w for w in b.words if _function_word(w))
    # How many function words one side has more of than the other: the size of
    # `(fa - fb) + (fb - fa)`, counted without building those Counters.
    differ = sum(abs(n - fb[w]) for w, n in fa.items())
    differ += sum(n for w, n in fb.items() if w not in fa)
    return (
        len(ca & cb) / len(union) if union else 1.0,
        float(len(ca - cb)),
        float(len(cb - ca)),
        shorter / longer if longer else 1.0,
        math.log1p(longer),
        float(set(qa) != set(qb)),
        float(qa[:1] != qb[:1]),
        float(differ),
    )


def features(
    prompt: str,
    cached: str,
    distance: float,
    prompt_words: Words | None = None,
    cached_words: Words | None = None,
    *,
    agree: bool = False,
) -> tuple[float, ...]:
    """The feature vector of `FEATURES` (or `LEXICAL_FEATURES` when words are missing).

    `agree`: the caller has run every check (`conflicts`) and none failed, so the
    flags are all 0 without running them again.
    """
    a, b = tokenize(prompt), tokenize(cached)
    flags = (0.0,) * len(CHECKS) if agree else tuple(float(c(a, b)) for c in CHECKS.values())
    same = float(same_words(prompt, cached))
    head = (distance, distance * distance, *flags, *lexical(a, b), same)
    if prompt_words is None or cached_words is None:
        return head
    return (*head, *alignment(prompt_words, cached_words))


# A rewording: the same content words (stemmed) and question words, and almost
# the same sentence vector ("lock my screen on a Mac" / "lock the screen on my
# Mac"). On the QQP dev pairs these are right 90% of the time, as often as the
# learned score's default operating point, which label noise holds back there.
REWORDING_DISTANCE = 0.05
# Within this distance, pairs no rule vetoes are the same request 95% of the time on
# the training mix (161 pairs), as often as the default target asks: served unscored.
NEAR_DISTANCE = 0.015
_JACCARD = LEXICAL_FEATURES.index("jaccard")
_QUESTION = LEXICAL_FEATURES.index("question_words_differ")


def reworded(x: Sequence[float]) -> bool:
    """`features()` of a pair that only rewords (if `same_order` too): served unscored."""
    return x[0] <= REWORDING_DISTANCE and x[_JACCARD] >= 1.0 and x[_QUESTION] == 0.0


def same_order(prompt: str, cached: str) -> bool:
    """No two content words both prompts share trade places across a relation word.

    "How many cups are in a gallon?" and "How many gallons are in a cup?" have
    the same words, with "cup" and "gallon" on either side of "in"; "What is the
    capital city of France?" and "Which city is the capital of France?" keep
    both on the same side of "of".
    """
    a, b = tokenize(prompt), tokenize(cached)
    shared = {_stem(w) for w in content_words(a)} & {_stem(w) for w in content_words(b)}
    ordered_b = _across_relations(b, shared)
    return not any((v, u) in ordered_b for u, v in _across_relations(a, shared))


_RELATIONS = frozenset(("in", "of", "to", "from", "per", "than", "into", "for", "on"))


def _across_relations(tokens: Tokens, shared: set[str]) -> set[tuple[str, str]]:
    """Pairs (u, v) of shared content words with u before a relation word and v after it."""
    pairs: set[tuple[str, str]] = set()
    seen: list[tuple[str, int]] = []
    relations = 0
    for word in tokens.words:
        if word in _RELATIONS:
            relations += 1
            continue
        stem = _stem(word)
        if is_content(word) and stem in shared:
            pairs.update((u, stem) for u, at in seen if at < relations and u != stem)
            seen.append((stem, relations))
    return pairs


@dataclass(frozen=True, slots=True)
class Combiner:
    """Logistic regression on standardised features; `cutoffs` maps target precision -> logit."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    cutoffs: Mapping[float, float]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Combiner:
        return cls(
            tuple(data["features"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            np.asarray(data["coef"], dtype=np.float64),
            float(data["intercept"]),
            {float(k): float(v) for k, v in data["cutoffs"].items()},
        )

    def logit(self, values: Sequence[float]) -> float:
        x = (np.asarray(values[: len(self.names)], dtype=np.float64) - self.mean) / self.scale
        return float(x @ self.coef + self.intercept)

    def cutoff(self, target_precision: float) -> float:
        return interpolate_cutoff(self.cutoffs, target_precision)


def interpolate_cutoff(cutoffs: Mapping[float, float], target: float) -> float:
    """The logit cut-off for `target` precision, from the trained points.

    Linear between trained points; below the lowest, its cut-off. A trained
    target that no cut-off reached out of fold is infinite (QQP's label noise
    caps measurable precision near 0.93): from there up nothing learned is
    served, and targets between the last reachable point and it rise along the
    last measured slope, so that a stricter setting is never a looser one.
    """
    finite = sorted((p, c) for p, c in cutoffs.items() if math.isfinite(c))
    if not finite or any(p <= target and not math.isfinite(c) for p, c in cutoffs.items()):
        return math.inf
    ps, cs = [p for p, _ in finite], [c for _, c in finite]
    if target <= ps[-1] or len(ps) == 1:
        return float(np.interp(target, ps, cs))
    slope = (cs[-1] - cs[-2]) / (ps[-1] - ps[-2])
    return cs[-1] + slope * (target - ps[-1])


def load_models(name: str = "verifier.json") -> dict[str, Any]:
    """The committed models' parameters by name, as `scripts/train_verifier.py` wrote them."""
    text = resources.files("reprise").joinpath("_data", name).read_text(encoding="utf-8")
    models: dict[str, Any] = json.loads(text)["models"]
    return models


def load_combiners(name: str = "verifier.json") -> dict[str, Combiner]:
    """The committed combiners by variant: "align" (with token alignment) and "lexical"."""
    # The same file holds the interaction head's cut-offs (`head.py`), not a combiner.
    return {v: Combiner.from_dict(m) for v, m in load_models(name).items() if "coef" in m}
