"""An LRU in front of any embedder: an exact repeat of a text is never embedded twice."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from reprise._protocols import Embedder, Vector


class LRUEmbedder:
    """Wraps an `Embedder`, remembering the vectors of the last `size` texts.

    Keys are SHA-256 digests, so the memory held is the vectors, not the texts.
    """

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        self.inner = inner
        self.size = size
        self._vectors: OrderedDict[bytes, Vector] = OrderedDict()

    @property
    def dims(self) -> int:
        return self.inner.dims

    async def embed(self, texts: Sequence[str]) -> Vector:
        keys = [hashlib.sha256(t.encode()).digest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            first_text = {k: t for k, t in zip(keys, texts, strict=True)}
            fresh = await self.inner.embed([first_text[k] for k in missing])
            for key, vector in zip(missing, fresh, strict=True):
                self._remember(key, vector)
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = self._vectors[key]
            self._vectors.move_to_end(key)
        return out

    def _remember(self, key: bytes, vector: Vector) -> None:
        self._vectors[key] = vector
        if len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    async def aclose(self) -> None:
        await self.inner.aclose()
