"""The learned verifier's weights as one object, read from the package once per verifier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reprise._verify.head import InteractionHead, load_head
from reprise._verify.model import Combiner, load_combiners


@dataclass(frozen=True, slots=True)
class VerifierWeights:
    """The logistic combiners by variant ("align", "lexical") and the interaction head.

    `shipped()` reads the committed files (`reprise/_data/verifier.json`,
    `verifier_head.npz`, ~10 ms); verifiers at other strictnesses share one.
    """

    combiners: Mapping[str, Combiner]
    head: InteractionHead | None

    @classmethod
    def shipped(cls) -> VerifierWeights:
        combiners = load_combiners()
        return cls(combiners, load_head(combiners["align"]))
