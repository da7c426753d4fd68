"""A persistent memo of embeddings, so repeated benchmark runs embed each text once.

It sits behind the cache's LRU, in place of the real embedder: the vectors are the
model's own, saved to a `.npy` file named by the model's fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reprise._protocols import Embedder, Vector


def fingerprint(embedder: Embedder) -> str:
    """Names the model: its weights' digest when known, else the class.

    A wrapper that embeds with the model it keeps in `inner` (`TokenMemory`)
    is named after that model.
    """
    model: object = embedder
    while getattr(model, "spec", None) is None and getattr(model, "inner", None) is not None:
        model = model.inner  # type: ignore[attr-defined]
    digest = getattr(getattr(model, "spec", None), "fingerprint", None)
    if callable(digest):
        return f"{type(model).__name__}-{digest()}"
    return type(embedder).__name__


class SavedVectors:
    """An `Embedder` answering known texts from `directory`, the rest from `inner`.

    It deliberately has no `embed_tokens`: the benchmark puts a `TokenMemory`
    below it and hands that to the cache, so texts answered from here get their
    token vectors from the model when the verifier asks for them.
    """

    def __init__(self, inner: Embedder, directory: Path) -> None:
        self.inner = inner
        self.path = directory / f"vectors-{fingerprint(inner)}.npz"
        self._vectors: dict[bytes, Vector] = {}
        self._dirty = False
        if self.path.is_file():
            self._vectors = self._load()

    @property
    def dims(self) -> int:
        return self.inner.dims

    async def embed(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.empty((0, self.dims), dtype=np.float32)
        keys = [hashlib.sha256(t.encode()).digest()[:16] for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        if missing:
            fresh = await self.inner.embed(list(missing.values()))
            self._vectors.update(zip(missing, fresh, strict=True))
            self._dirty = True
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32, copy=False)

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Another run may have saved meanwhile: keep its vectors too.
        if self.path.is_file():
            self._vectors = {**self._load(), **self._vectors}
        keys = np.frombuffer(b"".join(self._vectors), dtype=np.uint8).reshape(-1, 16)
        vectors = np.stack(list(self._vectors.values()))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.replace(self.path)
        self._dirty = False

    def _load(self) -> dict[bytes, Vector]:
        # Keys are 16 raw digest bytes a row (uint8), so none loses a trailing zero.
        with np.load(self.path) as saved:
            keys, vectors = saved["keys"], saved["vectors"]
        if keys.dtype.kind == "S":  # an older file: numpy dropped trailing zero bytes
            return {bytes(k).ljust(16, b"\0"): v for k, v in zip(keys, vectors, strict=True)}
        return {k.tobytes(): v for k, v in zip(keys, vectors, strict=True)}

    async def aclose(self) -> None:
        self.save()
        await self.inner.aclose()
