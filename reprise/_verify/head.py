"""The interaction head: a small learned model over the two prompts' word vectors.

The combiner (`model.py`) sees the word alignment only through five summary
numbers. The head looks at every word: each word of one prompt soft-aligns to
the other prompt's words (softmax over cosines), a small layer scores the word
against what it aligned to, and max/mean pooling over both sides, joined with
the combiner's standardised features, gives one logit. Several heads trained
from different seeds are averaged. It is numpy on vectors the encoder already
computed: no model call, a fraction of a millisecond per candidate.

Weights: `reprise/_data/verifier_head.npz`, written with the cut-offs in
`verifier.json` by `scripts/train_verifier.py` (which trains in torch and
checks this forward pass against torch's before writing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from reprise._verify.align import Words
from reprise._verify.model import Combiner, interpolate_cutoff, load_models

# Words read per prompt; the training used the same limit.
MAX_WORDS = 32
_ARRAYS = ("tok_w", "tok_b", "mid_w", "mid_b", "out_w", "out_b", "tau")


@dataclass(frozen=True, slots=True)
class _Weights:
    tok_w: np.ndarray  # (2 * dims + 2, hidden)
    tok_b: np.ndarray
    mid_w: np.ndarray  # (4 * hidden + features, 32)
    mid_b: np.ndarray
    out_w: np.ndarray  # (32,)
    out_b: float
    tau: float


class InteractionHead:
    """The mean logit of the seeded heads; `cutoffs` maps target precision -> logit.

    `mean` and `scale` standardise the combiner's features (`model.FEATURES`)
    as in training. `score()`, what the verifier compares with the cut-offs, adds
    `combiner_weight` times `combiner`'s logit to the heads' (the cut-offs are
    for that sum): the two rank differently enough that the blend beats either
    alone out of fold.
    """

    def __init__(
        self,
        heads: Sequence[_Weights],
        mean: np.ndarray,
        scale: np.ndarray,
        cutoffs: Mapping[float, float],
        blend: tuple[float, Combiner] | None = None,
    ) -> None:
        self.heads = tuple(heads)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.cutoffs = dict(cutoffs)
        self.blend = blend

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        mean: np.ndarray,
        scale: np.ndarray,
        cutoffs: Mapping[float, float],
        blend: tuple[float, Combiner] | None = None,
    ) -> InteractionHead:
        """`arrays` holds each name of `_ARRAYS` stacked over seeds (first axis)."""

        def seed(i: int) -> _Weights:
            def matrix(k: str) -> np.ndarray:
                return np.asarray(arrays[k][i], dtype=np.float32)

            def scalar(k: str) -> float:
                return float(np.asarray(arrays[k][i]).reshape(-1)[0])

            return _Weights(
                tok_w=matrix("tok_w"),
                tok_b=matrix("tok_b"),
                mid_w=matrix("mid_w"),
                mid_b=matrix("mid_b"),
                out_w=matrix("out_w"),
                out_b=scalar("out_b"),
                tau=scalar("tau"),
            )

        heads = [seed(i) for i in range(len(arrays["tau"]))]
        return cls(heads, mean, scale, cutoffs, blend)

    def logit(self, a: Words, b: Words, features: Sequence[float]) -> float:
        """Higher = more likely the same request; symmetric in `a` and `b`."""
        x = (np.asarray(features, dtype=np.float32) - self.mean) / self.scale
        va, ca = _side_input(a)
        vb, cb = _side_input(b)
        sims = va @ vb.T  # the same for every head, and for b against a transposed
        total = 0.0
        for w in self.heads:
            ha, hb = _side(w, va, ca, vb, sims), _side(w, vb, cb, va, sims.T)
            z = np.concatenate([ha + hb, np.abs(ha - hb), x])
            mid = np.maximum(z @ w.mid_w + w.mid_b, 0.0)
            total += float(mid @ w.out_w) + w.out_b
        return total / len(self.heads)

    def score(self, a: Words, b: Words, features: Sequence[float]) -> float:
        """The heads' logit blended with the combiner's: what the cut-offs are for."""
        blended = 0.0 if self.blend is None else self.blend[0] * self.blend[1].logit(features)
        return self.logit(a, b, features) + blended

    def cutoff(self, target_precision: float) -> float:
        return interpolate_cutoff(self.cutoffs, target_precision)


def _side_input(words: Words) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.asarray(words.vectors[:MAX_WORDS], dtype=np.float32)
    content = np.asarray(words.content[:MAX_WORDS], dtype=np.float32)
    return vectors, content


def _side(
    w: _Weights, va: np.ndarray, ca: np.ndarray, vb: np.ndarray, sims: np.ndarray
) -> np.ndarray:
    """Pooled scores of one prompt's words against the other prompt (`sims`: va @ vb.T)."""
    hidden = w.tok_b.shape[0]
    if len(va) == 0:
        return np.zeros(2 * hidden, dtype=np.float32)
    if len(vb) == 0:  # nothing to align to: as in training, an all-masked other side
        aligned = np.zeros_like(va)
        best = np.full(len(va), -1.0, dtype=np.float32)
    else:
        att = np.exp((sims - sims.max(axis=1, keepdims=True)) * w.tau)
        aligned = (att / att.sum(axis=1, keepdims=True)) @ vb
        best = np.maximum(sims.max(axis=1), -1.0)
    u = np.concatenate([va * aligned, np.abs(va - aligned), best[:, None], ca[:, None]], axis=1)
    h = np.maximum(u @ w.tok_w + w.tok_b, 0.0)
    return np.concatenate([h.max(axis=0), h.mean(axis=0)])


def load_head(combiner: Combiner, name: str = "verifier_head.npz") -> InteractionHead | None:
    """The committed head, blended with `combiner` (the "align" one), or None if none ships."""
    model = load_models().get("head")
    data = resources.files("reprise").joinpath("_data", name)
    if model is None or not data.is_file():
        return None
    with data.open("rb") as f, np.load(f) as npz:
        arrays = {k: npz[k] for k in _ARRAYS}
    cutoffs = {float(k): float(v) for k, v in model["cutoffs"].items()}
    mean, scale = np.asarray(model["mean"]), np.asarray(model["scale"])
    blend = (float(model.get("combiner_weight", 0.0)), combiner)
    return InteractionHead.from_arrays(arrays, mean, scale, cutoffs, blend)
