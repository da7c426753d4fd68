"""The verifier configurations `reprise bench quality --verifier NAME` can run.

Each value builds a fresh verifier; "verified" is what `SemanticCache()` uses.
The others switch parts of it off or change its strictness, to measure them.
"""

from __future__ import annotations

from collections.abc import Callable

from reprise._cache import ThresholdVerifier
from reprise._protocols import Verifier
from reprise._verify.verifier import LearnedVerifier, RuleVerifier

VERIFIERS: dict[str, Callable[[], Verifier]] = {
    "threshold": ThresholdVerifier,
    "rules": RuleVerifier,
    # the learned score with token alignment, without the rules' veto
    "combiner": lambda: LearnedVerifier(rules=False),
    # rules and the combiner without token alignment (what a remote embedder gets)
    "lexical": lambda: LearnedVerifier(alignment=False),
    "verified": LearnedVerifier,
    "strict": lambda: LearnedVerifier(0.98),
    "lenient": lambda: LearnedVerifier(0.90),
}
