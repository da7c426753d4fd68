"""The default verifier: rule checks, then a learned score over the two prompts.

    candidate (nearest first, already within the cache's threshold)
      1. over its entry's own limit (feedback)    -> skip
      2. a rule check fails (number, negation...) -> skip        every semantic candidate
      3. same words but for case, punctuation...  -> serve it
      4. same content words, very near            -> serve it
      5. learned logit >= cut-off(target)         -> serve it
The learned score is the interaction head (`head.py`, over both prompts' word
vectors, blended with the logistic combiner) when the embedder hands out token
vectors (the local model), else the logistic combiner over lexical features (a
remote embedder).
The threshold is the outer edge of the grey zone: a candidate beyond it is
clearly different and costs nothing. Rules run on every semantic candidate
however near, because a swapped direction or number moves the sentence vector
by almost nothing (0.001 for "from New York to Florida" and back). Exact-tier
hits never reach a verifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from reprise._cache import Decision
from reprise._protocols import Embedder, Match
from reprise._verify import DEFAULT_TARGET_PRECISION
from reprise._verify.align import Words
from reprise._verify.feedback import entry_limit
from reprise._verify.head import InteractionHead, load_head
from reprise._verify.model import Combiner, features, load_combiners, reworded
from reprise._verify.rules import CHECKS, conflicts, same_words
from reprise._verify.tokens import TokenCache, token_source


@cache
def _combiners() -> dict[str, Combiner]:
    return load_combiners()


@cache
def _head() -> InteractionHead | None:
    return load_head(_combiners()["align"])


class RuleVerifier:
    """Serve the nearest candidate within the threshold that passes every rule check."""

    def __init__(self, checks: Sequence[str] = tuple(CHECKS)) -> None:
        self.checks = tuple(checks)

    async def decide(self, prompt: str, candidates: Sequence[Match], threshold: float) -> Decision:
        reasons = []
        for match in candidates:
            if match.distance > threshold:
                break
            failed = conflicts(prompt, match.entry.prompt, self.checks)
            if failed:
                reasons.append(f"{match.distance:.4f} rejected: {', '.join(failed)} differ")
                continue
            return Decision(match, f"distance {match.distance:.4f} <= {threshold}, rules pass")
        return Decision(None, "; ".join(reasons) or "no candidate within the threshold")


class LearnedVerifier:
    """Rules, then a learned score: the interaction head, or a logistic combiner.

    `target_precision` is the strictness: the share of served semantic hits
    meant to be right, as calibrated out-of-fold on the QQP dev pairs (0.80 to
    0.95; higher is stricter). `rules=False`, `alignment=False` and `head=False`
    switch parts off to measure them (`head=False` scores with the logistic
    combiner over the alignment features); without token vectors (a remote
    embedder) the lexical combiner is used.
    """

    def __init__(
        self,
        target_precision: float = DEFAULT_TARGET_PRECISION,
        *,
        rules: bool = True,
        alignment: bool = True,
        head: bool = True,
        embedder: Embedder | None = None,
    ) -> None:
        if not 0.0 < target_precision < 1.0:
            raise ValueError(f"target_precision must be in (0, 1), got {target_precision}")
        self.target_precision = target_precision
        _head()  # loads the committed weights now, not on the first lookup (~10 ms once)
        self.rules = rules
        self.alignment = alignment
        self.head = head
        self._tokens: TokenCache | None = None
        self._siblings: dict[float, LearnedVerifier] = {}
        if embedder is not None:
            self.bind(embedder)

    def at(self, target_precision: float) -> LearnedVerifier:
        """This verifier at another strictness, sharing its word-vector source."""
        if target_precision == self.target_precision:
            return self
        sibling = self._siblings.get(target_precision)
        if sibling is None:
            sibling = LearnedVerifier(
                target_precision, rules=self.rules, alignment=self.alignment, head=self.head
            )
            self._siblings[target_precision] = sibling
        sibling._tokens = self._tokens
        return sibling

    def bind(self, embedder: Embedder) -> None:
        """Take word vectors from `embedder`'s model calls (the cache calls this)."""
        self._tokens = token_source(embedder) if self.alignment else None

    async def decide(self, prompt: str, candidates: Sequence[Match], threshold: float) -> Decision:
        within = [m for m in candidates if m.distance <= threshold]
        if not within:
            return Decision(None, "no candidate within the threshold")
        words = await self._words([prompt, *(m.entry.prompt for m in within)])
        variant, cutoff = self._variant(words is not None)
        reasons = []
        for i, match in enumerate(within):
            pair = (words[0], words[i + 1]) if words is not None else None
            served, reason = self._judge(prompt, match, pair, variant, cutoff)
            if served:
                return Decision(match, f"distance {match.distance:.4f}, {reason}")
            reasons.append(f"{match.distance:.4f} rejected: {reason}")
        return Decision(None, "; ".join(reasons))

    def _judge(
        self,
        prompt: str,
        match: Match,
        pair: tuple[Words, Words] | None,
        variant: str,
        cutoff: float,
    ) -> tuple[bool, str]:
        """Whether to serve this candidate, and why either way (the trace shows it)."""
        reason = self._reject(prompt, match)
        if reason is not None:
            return False, reason
        if same_words(prompt, match.entry.prompt):
            return True, "same words (case, punctuation)"
        x = features(prompt, match.entry.prompt, match.distance, *(pair or (None, None)))
        if reworded(x):
            return True, "same content words"
        score = self._score(variant, x, pair)
        if score < cutoff:
            return False, f"{variant} score {score:.2f} < {cutoff:.2f}"
        target = self.target_precision
        return True, f"{variant} score {score:.2f} >= {cutoff:.2f} (target precision {target})"

    def _variant(self, has_words: bool) -> tuple[str, float]:
        """Which learned score decides, and its cut-off at this target precision."""
        head = _head()
        if has_words and self.head and head is not None:
            return "head", head.cutoff(self.target_precision)
        variant = "align" if has_words else "lexical"
        return variant, _combiners()[variant].cutoff(self.target_precision)

    def _score(self, variant: str, x: tuple[float, ...], pair: tuple[Words, Words] | None) -> float:
        head = _head()
        if variant == "head" and head is not None and pair is not None:
            return head.score(pair[0], pair[1], x)
        return _combiners()[variant].logit(x)

    def _reject(self, prompt: str, match: Match) -> str | None:
        limit = entry_limit(match.entry.meta)
        if limit is not None and match.distance > limit:
            return f"over the entry's own limit {limit:.4f} (feedback)"
        if self.rules:
            failed = conflicts(prompt, match.entry.prompt)
            if failed:
                return f"{', '.join(failed)} differ"
        return None

    async def _words(self, texts: Sequence[str]) -> list[Words] | None:
        if self._tokens is None:
            return None
        return await self._tokens.words(texts)
