"""Alignment of two prompts' contextual token embeddings.

The encoder already computes a vector per word piece; the sentence vector is
their mean, which is why "17 times 23" and "18 times 23" land together. Here
each content word of one prompt looks for its best counterpart in the other:
a word with no close counterpart is something one side says and the other
does not ("vegan" vs "vegetarian", "Paris" vs "Rome", an extra "not").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reprise._protocols import Vector
from reprise._verify.rules import is_content


@dataclass(frozen=True, slots=True)
class Words:
    """A prompt's words (word pieces merged back), their vectors, and which carry content."""

    words: tuple[str, ...]
    vectors: Vector  # (len(words), dims), L2-normalised
    content: tuple[bool, ...]


def merge_pieces(tokens: Sequence[str], vectors: Vector) -> Words:
    """Join WordPiece continuations ("##s") into words; a word's vector is its pieces' mean."""
    words: list[str] = []
    starts: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.startswith("##") and words:
            words[-1] += tok[2:]
        else:
            words.append(tok)
            starts.append(i)
    if not words:
        dims = vectors.shape[-1] if vectors.ndim == 2 else 0
        return Words((), np.zeros((0, dims), dtype=np.float32), ())
    # Pieces of a word are contiguous and summed; the mean's scale does not survive
    # normalisation, so the sum will do. Most words are one piece: a reduceat over
    # all of them cost ~2 us per word, so only words of three or more pieces go
    # through it (one segment each, the same sums as one call over all). Only
    # words of several pieces are visited at all, and the norm is numpy's own
    # formula for it (`linalg.norm`'s, without its checks), the same bits.
    pieces = _float32(vectors)
    merged = pieces[starts]
    if len(starts) < len(pieces):
        ends = [*starts[1:], len(pieces)]
        for j, start in enumerate(starts):
            end = ends[j]
            if end - start == 2:
                merged[j] += pieces[start + 1]
            elif end - start > 2:
                merged[j] = np.add.reduceat(pieces[start:end], [0], axis=0)[0]
    norms = np.sqrt(np.add.reduce(merged * merged, axis=1, keepdims=True))
    merged /= np.maximum(norms, 1e-12)
    return Words(tuple(words), merged, tuple(map(is_content, words)))


# Every float16 value as numpy converts it to float32: looking a token memory's
# vectors up here is the same bits as `astype`, about twice as fast (numpy
# converts float16 in software on this CPU: ~10-30 us for a prompt's vectors).
_FLOAT32_OF_FLOAT16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def _float32(vectors: Vector) -> Vector:
    if isinstance(vectors, np.ndarray) and vectors.dtype == np.float16:
        return _FLOAT32_OF_FLOAT16.take(vectors.view(np.uint16))
    return np.asarray(vectors, dtype=np.float32)


ALIGN_FEATURES = (
    "unmatched_max",
    "unmatched_min_side",
    "unmatched_mean",
    "unmatched_count",
    "unmatched_sum",
)


def alignment(a: Words, b: Words, floor: float = 0.35) -> tuple[float, ...]:
    """How much content each side has without a counterpart on the other.

    Per content word, `1 - max cosine` to any word of the other prompt. Returns
    the largest such gap, the smaller of the two sides' largest gaps (both
    sides lack something: a substitution), the mean gap, the number of words
    whose gap exceeds `floor`, and the summed excess over `floor`.
    """
    if not a.words or not b.words:
        return (1.0, 1.0, 1.0, 1.0, 1.0)
    sims = a.vectors @ b.vectors.T
    gap_a = _gaps(1.0 - sims.max(axis=1), a.content)
    gap_b = _gaps(1.0 - sims.max(axis=0), b.content)
    gaps = np.concatenate([gap_a, gap_b])
    if gaps.size == 0:
        return (0.0, 0.0, 0.0, 0.0, 0.0)
    side_max_a = float(gap_a.max()) if gap_a.size else 0.0
    side_max_b = float(gap_b.max()) if gap_b.size else 0.0
    excess = np.maximum(gaps - floor, 0.0)
    return (
        float(gaps.max()),
        min(side_max_a, side_max_b),
        float(gaps.mean()),
        float((gaps > floor).sum()),
        float(excess.sum()),
    )


def _gaps(gaps: Vector, content: tuple[bool, ...]) -> Vector:
    mask = np.fromiter(content, dtype=bool, count=len(content))
    return np.asarray(gaps[mask], dtype=np.float32)
