"""Token vectors remembered from the embedding calls the cache makes anyway.

The local model's call that gives a sentence vector gives every word piece's
vector too (the sentence vector is their pooled mean). `TokenMemory` sits under
the cache's LRU, in place of the model: each text it embeds, stored or looked
up, has its token vectors kept by text digest. When the verifier later judges
a prompt against a cached entry, both are usually remembered and it runs no
model call. An entry stored by another process (or before a restart) carries its
prompt's vectors (`token_blob`, written by the cache from this memory at store
time), which the cache hands back here before the verifier asks (`learn`); only
an entry without them (written by an older version, too long, or by a remote
embedder) costs a model call, batched with the others it needs.

The memory is bounded by texts and by bytes: a text's vectors cost 768 bytes
per word piece, and the model reads up to 256 of them, so 4,096 long texts
would hold ~800 MB where 4,096 short questions hold ~55 MB.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from reprise._embedders import token_blob
from reprise._protocols import Embedder, TokenEmbedder, TokenVectors, Vector

DEFAULT_MAX_BYTES = 64 * 2**20
_OVERHEAD = 400  # per text, measured ~340 (item, tuple, ndarray, key, dict slot); rounded up


@dataclass(frozen=True, slots=True)
class _Remembered:
    tokens: tuple[str, ...]
    vectors: Vector  # float16: the alignment compares cosines to two decimals

    @property
    def nbytes(self) -> int:
        # the vectors, a tuple slot per (interned) token, and the item, key and array headers
        return self.vectors.nbytes + 8 * len(self.tokens) + _OVERHEAD


class TokenMemory:
    """An `Embedder` over `model` keeping the token vectors of its last texts.

    It keeps at most `size` texts and `max_bytes` of them, forgetting the least
    recently used first. It is also the `TokenSource` the cache hands its verifier.
    """

    def __init__(
        self, model: TokenEmbedder, size: int = 4096, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.inner = model
        self.size = size
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._pieces: OrderedDict[bytes, _Remembered] = OrderedDict()
        # Ties stored vectors to the model: another model's, even of the same width, are foreign.
        self.tag = token_blob.model_tag(str(getattr(model, "model_id", type(model).__name__)))

    @property
    def dims(self) -> int:
        return self.inner.dims

    async def embed(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.empty((0, self.dims), dtype=np.float32)
        results = await self.inner.embed_tokens(texts)
        for text, result in zip(texts, results, strict=True):
            self._remember(_key(text), result)
        return np.stack([r.sentence for r in results]).astype(np.float32, copy=False)

    async def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        """The token vectors of `texts`; those not remembered are embedded together, once."""
        keys = [_key(t) for t in texts]
        found: dict[bytes, TokenVectors] = {}
        for key in keys:
            if key in self._pieces:
                self._pieces.move_to_end(key)
                found[key] = self._pieces[key]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if missing:
            results = await self.inner.embed_tokens(list(missing.values()))
            for key, result in zip(missing, results, strict=True):
                found[key] = self._remember(key, result)
        return [found[k] for k in keys]

    def knows(self, text: str) -> bool:
        """Whether `text`'s token vectors are remembered (no model call needed for it)."""
        return _key(text) in self._pieces

    def encoded(self, text: str) -> bytes | None:
        """The remembered vectors of `text` as a blob to store with its entry, if any
        (None also for a prompt past `token_blob.MAX_PIECES`)."""
        item = self._pieces.get(_key(text))
        if item is None:
            return None
        return token_blob.encode(text, item.tokens, item.vectors, self.tag)

    def learn(self, text: str, blob: object) -> bool:
        """Remember `text`'s vectors from a stored blob; False if it is no valid blob of
        `text` from this model (then it is ignored, and the text costs a call if judged)."""
        found = token_blob.decode(blob, text, self.dims, self.tag)
        if found is None:
            return False
        self._remember(_key(text), found)
        return True

    def forget(self) -> None:
        """Drop every remembered text (as a restart would)."""
        self._pieces.clear()
        self.nbytes = 0

    @property
    def texts(self) -> int:
        """How many texts' token vectors are remembered."""
        return len(self._pieces)

    def _remember(self, key: bytes, result: TokenVectors) -> _Remembered:
        # Interned: word pieces come from a vocabulary of ~30,000, not one string per use.
        tokens = tuple(sys.intern(t) for t in result.tokens)
        item = _Remembered(tokens, result.vectors.astype(np.float16))
        old = self._pieces.pop(key, None)
        self.nbytes += item.nbytes - (old.nbytes if old is not None else 0)
        self._pieces[key] = item
        while len(self._pieces) > self.size or self.nbytes > self.max_bytes:
            _, dropped = self._pieces.popitem(last=False)
            self.nbytes -= dropped.nbytes
        return item

    async def aclose(self) -> None:
        await self.inner.aclose()


def token_memory(embedder: Embedder, size: int = 4096) -> TokenMemory | None:
    """A `TokenMemory` over `embedder` if its model call gives token vectors, else None."""
    # Looked up on the class: an isinstance() check against the protocol would
    # read `dims`, which a remote embedder knows only after its first answer.
    if callable(getattr(type(embedder), "embed_tokens", None)):
        return TokenMemory(cast(TokenEmbedder, embedder), size)
    return None


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:16]
