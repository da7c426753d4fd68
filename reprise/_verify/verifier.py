"""The default verifier: rule checks, then a learned score over the two prompts.

    candidate (nearest first, within the cache's threshold and the entry's own
    feedback limit, which the cache checks for every verifier)
      1. a rule check fails (number, negation...) -> skip        every semantic candidate
      2. same words but for case, punctuation...  -> serve it (also "which city is X" / "what is X")
      3. same content words, very near            -> serve it
      4. nearly the same vector (<= 0.015)        -> serve it
      5. learned logit >= cut-off(target)         -> serve it
The learned score is the interaction head (`head.py`, over both prompts' word
vectors, blended with the logistic combiner) when the cache hands over token
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

from reprise._protocols import Decision, Match, TokenSource
from reprise._verify.align import Words, merge_pieces
from reprise._verify.model import NEAR_DISTANCE, features, reworded, same_order
from reprise._verify.rules import VETOES, conflicts
from reprise._verify.surface import same_words
from reprise._verify.weights import VerifierWeights

DEFAULT_TARGET_PRECISION = 0.95


class RuleVerifier:
    """Serve the nearest candidate within the threshold that passes every rule check."""

    def __init__(self, checks: Sequence[str] = tuple(VETOES)) -> None:
        self.checks = tuple(checks)

    async def decide(
        self,
        prompt: str,
        candidates: Sequence[Match],
        threshold: float,
        *,
        tokens: TokenSource | None = None,
    ) -> Decision:
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
    meant to be right, as calibrated out-of-fold on the training mix (0.80 to
    0.99, default 0.95; higher is stricter). `weights` defaults to the shipped ones
    (`VerifierWeights.shipped()`). `rules=False`, `alignment=False` and
    `head=False` switch parts off to measure them (`head=False` scores with the
    logistic combiner over the alignment features); without token vectors (a
    remote embedder) the lexical combiner is used.
    """

    def __init__(
        self,
        target_precision: float = DEFAULT_TARGET_PRECISION,
        *,
        weights: VerifierWeights | None = None,
        rules: bool = True,
        alignment: bool = True,
        head: bool = True,
    ) -> None:
        if not 0.0 < target_precision < 1.0:
            raise ValueError(f"target_precision must be in (0, 1), got {target_precision}")
        self.target_precision = target_precision
        self.weights = VerifierWeights.shipped() if weights is None else weights
        self.rules = rules
        self.alignment = alignment
        self.head = head
        self._siblings: dict[float, LearnedVerifier] = {}

    def at(self, target_precision: float) -> LearnedVerifier:
        """This verifier at another strictness, sharing its weights."""
        if target_precision == self.target_precision:
            return self
        sibling = self._siblings.get(target_precision)
        if sibling is None:
            sibling = LearnedVerifier(
                target_precision,
                weights=self.weights,
                rules=self.rules,
                alignment=self.alignment,
                head=self.head,
            )
            self._siblings[target_precision] = sibling
        return sibling

    async def decide(
        self,
        prompt: str,
        candidates: Sequence[Match],
        threshold: float,
        *,
        tokens: TokenSource | None = None,
    ) -> Decision:
        within = [m for m in candidates if m.distance <= threshold]
        if not within:
            return Decision(None, "no candidate within the threshold")
        words = await self._words([prompt, *(m.entry.prompt for m in within)], tokens)
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
        words = pair or (None, None)
        # `_reject` has run every check when the rules are on: none failed.
        x = features(prompt, match.entry.prompt, match.distance, *words, agree=self.rules)
        if reworded(x) and same_order(prompt, match.entry.prompt):
            return True, "same content words"
        if match.distance <= NEAR_DISTANCE:
            return True, f"near duplicate (distance <= {NEAR_DISTANCE}), rules pass"
        score = self._score(variant, x, pair)
        if score < cutoff:
            return False, f"{variant} score {score:.2f} < {cutoff:.2f}"
        target = self.target_precision
        return True, f"{variant} score {score:.2f} >= {cutoff:.2f} (target precision {target})"

    def _variant(self, has_words: bool) -> tuple[str, float]:
        """Which learned score decides, and its cut-off at this target precision."""
        head = self.weights.head
        if has_words and self.head and head is not None:
            return "head", head.cutoff(self.target_precision)
        variant = "align" if has_words else "lexical"
        return variant, self.weights.combiners[variant].cutoff(self.target_precision)

    def _score(self, variant: str, x: tuple[float, ...], pair: tuple[Words, Words] | None) -> float:
        head = self.weights.head
        if variant == "head" and head is not None and pair is not None:
            return head.score(pair[0], pair[1], x)
        return self.weights.combiners[variant].logit(x)

    def _reject(self, prompt: str, match: Match) -> str | None:
        if self.rules:
            failed = conflicts(prompt, match.entry.prompt)
            if failed:
                return f"{', '.join(failed)} differ"
        return None

    async def _words(self, texts: Sequence[str], tokens: TokenSource | None) -> list[Words] | None:
        if tokens is None or not self.alignment:
            return None
        return [merge_pieces(t.tokens, t.vectors) for t in await tokens.token_vectors(texts)]
