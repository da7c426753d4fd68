"""Deterministic stand-ins for unit tests (only `tests/unit/` may use them).

`FakeEmbedder` is a bag-of-words embedder: every word gets a fixed random
direction, a text is the normalised sum of its words. Texts sharing most words
are near, texts sharing none are nearly orthogonal, and `vectors` pins the
embedding of chosen texts when a test needs an exact distance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import numpy as np

from reprise._exceptions import EmbedderError
from reprise._protocols import Vector

DIMS = 64


def unit(seed: int | str, dims: int = DIMS) -> Vector:
    """A fixed random unit vector for `seed`."""
    digest = hashlib.sha256(str(seed).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    vector = rng.standard_normal(dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


def at_distance(base: Vector, distance: float, seed: int | str = "other") -> Vector:
    """A unit vector whose cosine distance to unit `base` is exactly `distance` (0..1)."""
    other = unit(seed, len(base)).astype(np.float64)
    other -= (other @ base) * base
    other /= np.linalg.norm(other)
    cos = 1.0 - distance
    return (cos * base + np.sqrt(1.0 - cos * cos) * other).astype(np.float32)


class FakeEmbedder:
    """Counts its calls so tests can prove a path did not embed."""

    def __init__(self, dims: int = DIMS, vectors: Mapping[str, Vector] | None = None) -> None:
        self._dims = dims
        self.vectors = dict(vectors or {})
        self.calls = 0
        self.texts: list[str] = []
        self.fail = False
        self.closed = False

    @property
    def dims(self) -> int:
        return self._dims

    async def embed(self, texts: Sequence[str]) -> Vector:
        if self.fail:
            raise EmbedderError("fake embedder told to fail")
        self.calls += 1
        self.texts.extend(texts)
        return np.stack([self.vector(t) for t in texts]).astype(np.float32)

    def vector(self, text: str) -> Vector:
        if text in self.vectors:
            return self.vectors[text]
        words = re.findall(r"\w+", text.lower()) or [""]
        total = np.sum([unit(f"word:{w}", self._dims) for w in words], axis=0)
        return (total / np.linalg.norm(total)).astype(np.float32)

    async def aclose(self) -> None:
        self.closed = True
