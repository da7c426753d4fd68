"""An LRU in front of any embedder: an exact repeat of a text is never embedded twice."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from reprise._exceptions import EmbedderError
from reprise._protocols import Embedder, Vector


class LRUEmbedder:
    """Wraps an `Embedder`, remembering the vectors of the last `size` texts.

    Keys are SHA-256 digests, so the memory held is the vectors, not the texts.
    A text already being embedded for another caller is waited for, not embedded
    again: a burst of the same new prompt costs one model slot, not one each.
    """

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        self.inner = inner
        self.size = size
        self._vectors: OrderedDict[bytes, Vector] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[dict[bytes, Vector]]] = {}

    @property
    def dims(self) -> int:
        return self.inner.dims

    @property
    def texts(self) -> int:
        """How many texts' vectors are remembered."""
        return len(self._vectors)

    async def embed(self, texts: Sequence[str]) -> Vector:
        keys = [hashlib.sha256(t.encode()).digest() for t in texts]
        found: dict[bytes, Vector] = {}
        for key in keys:
            if key in self._vectors:
                found[key] = self._vectors[key]
                self._vectors.move_to_end(key)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        waiting = {k: self._pending[k] for k in missing if k in self._pending}
        mine = [k for k in missing if k not in waiting]
        if mine:
            text_of = dict(zip(keys, texts, strict=True))
            found.update(await self._embed_missing(mine, [text_of[k] for k in mine]))
        for key, future in waiting.items():
            # shield: a waiter giving up must not cancel the call others wait for
            found[key] = (await asyncio.shield(future))[key]
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    async def _embed_missing(self, keys: list[bytes], texts: list[str]) -> dict[bytes, Vector]:
        future: asyncio.Future[dict[bytes, Vector]] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._pending[key] = future
        try:
            fresh = dict(zip(keys, await self.inner.embed(texts), strict=True))
        except BaseException as exc:
            # Waiters share the failure; a cancelled owner leaves them an EmbedderError.
            error = exc if isinstance(exc, Exception) else EmbedderError("embedding cancelled")
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" log when nobody waits
            raise
        finally:
            for key in keys:
                self._pending.pop(key, None)
        future.set_result(fresh)
        for key, vector in fresh.items():
            self._remember(key, vector)
        return fresh

    def _remember(self, key: bytes, vector: Vector) -> None:
        self._vectors[key] = vector
        if len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    async def aclose(self) -> None:
        await self.inner.aclose()
