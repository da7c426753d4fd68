"""Verified hits: decide whether a cached answer answers this prompt.

`VERIFIERS` names the configurations `reprise bench quality --verifier NAME`
can run; each value builds a fresh verifier (the cache binds it to its
embedder). "default" is what `SemanticCache()` uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The verifiers are imported when built: the cache core imports this package
# (feedback limits), and the verifiers import the core's `Decision`.
if TYPE_CHECKING:
    from reprise._verify.verifier import LearnedVerifier, RuleVerifier

DEFAULT_TARGET_PRECISION = 0.90


def default_verifier(target_precision: float = DEFAULT_TARGET_PRECISION) -> LearnedVerifier:
    """Rules, token alignment and the learned combiner at `target_precision`."""
    from reprise._verify.verifier import LearnedVerifier

    return LearnedVerifier(target_precision)


def rules_only() -> RuleVerifier:
    from reprise._verify.verifier import RuleVerifier

    return RuleVerifier()


def combiner_only() -> LearnedVerifier:
    """The learned combiner with token alignment, without the rules' veto."""
    from reprise._verify.verifier import LearnedVerifier

    return LearnedVerifier(rules=False)


def lexical() -> LearnedVerifier:
    """Rules and the combiner without token alignment (what a remote embedder gets)."""
    from reprise._verify.verifier import LearnedVerifier

    return LearnedVerifier(alignment=False)


def strict() -> LearnedVerifier:
    from reprise._verify.verifier import LearnedVerifier

    return LearnedVerifier(0.95)


def lenient() -> LearnedVerifier:
    from reprise._verify.verifier import LearnedVerifier

    return LearnedVerifier(0.85)


VERIFIERS = {
    "threshold": "reprise._cache:ThresholdVerifier",
    "rules": "reprise._verify:rules_only",
    "combiner": "reprise._verify:combiner_only",
    "lexical": "reprise._verify:lexical",
    "verified": "reprise._verify:default_verifier",
    "strict": "reprise._verify:strict",
    "lenient": "reprise._verify:lenient",
}

__all__ = ["DEFAULT_TARGET_PRECISION", "VERIFIERS", "default_verifier"]
