"""Word vectors for the alignment check, taken from the embedding call the cache makes anyway.

`TokenCache` sits between the cache's `LRUEmbedder` and the local model: every
`embed()` runs the model's `embed_tokens()` instead (the same ORT call: the
sentence vector is the pooled token vectors) and keeps each text's word
vectors. A prompt looked up, then stored, then matched by a rewording later
has its words remembered at every step, so the verifier runs no model call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from reprise._protocols import Embedder, Vector
from reprise._verify.align import Words, merge_pieces


class _TokenEmbeddings(Protocol):
    tokens: list[str]
    vectors: Vector
    sentence: Vector


@runtime_checkable
class TokenEmbedder(Protocol):
    """An embedder that can also return per-token vectors (the local model)."""

    @property
    def dims(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vector: ...

    async def embed_tokens(self, texts: Sequence[str]) -> Sequence[_TokenEmbeddings]: ...

    async def aclose(self) -> None: ...


class TokenCache:
    """An `Embedder` that remembers the word vectors of the last `size` texts it embedded.

    Vectors are kept as float16 (alignment compares cosines to two decimals);
    `size` can be raised (the benchmark does, to hold its whole data set).
    """

    def __init__(self, inner: TokenEmbedder, size: int = 4096, *, follow: object = None) -> None:
        self.inner = inner
        self.size = size
        # The LRU above us, if any: remember as many texts as it does.
        self._follow = follow
        # Raw pieces, merged into words only when the verifier asks: the
        # embedding path (misses included) pays a float16 copy, nothing more.
        self._pieces: OrderedDict[str, tuple[list[str], Vector]] = OrderedDict()

    @property
    def dims(self) -> int:
        return self.inner.dims

    async def embed(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.empty((0, self.dims), dtype=np.float32)
        results = await self.inner.embed_tokens(texts)
        for text, result in zip(texts, results, strict=True):
            self._remember(text, result.tokens, result.vectors)
        return np.stack([r.sentence for r in results]).astype(np.float32)

    async def words(self, texts: Sequence[str]) -> list[Words]:
        """The word vectors of `texts`; those not remembered are embedded together, once."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._pieces))
        if missing:
            await self.embed(missing)
        out = []
        for text in texts:
            pieces = self._pieces.get(text)
            if pieces is None:  # evicted at once (size smaller than the batch)
                (result,) = await self.inner.embed_tokens([text])
                pieces = (result.tokens, result.vectors)
            out.append(merge_pieces(pieces[0], pieces[1]))
        return out

    def _remember(self, text: str, tokens: list[str], vectors: Vector) -> None:
        self._pieces[text] = (list(tokens), vectors.astype(np.float16))
        self._pieces.move_to_end(text)
        capacity = max(self.size, int(getattr(self._follow, "size", 0)))
        while len(self._pieces) > capacity:
            self._pieces.popitem(last=False)

    async def aclose(self) -> None:
        await self.inner.aclose()


def token_source(embedder: Embedder) -> TokenCache | None:
    """The `TokenCache` in `embedder`'s chain, inserting one if the model is found.

    Wrappers (the cache core's `LRUEmbedder`, the benchmark's saved vectors)
    keep the wrapped embedder in `inner`; the token cache goes right above the
    first one with `embed_tokens`, so every text it embeds passes through. An
    embedder without `embed_tokens` anywhere (a remote one) gives None.
    """
    parent: object = None
    node: object = embedder
    for _ in range(8):  # a chain of wrappers, never a cycle
        if isinstance(node, TokenCache):
            return node
        if isinstance(node, TokenEmbedder):
            cache = TokenCache(node, follow=embedder)
            if parent is not None:
                parent.inner = cache  # type: ignore[attr-defined]
            return cache
        parent, node = node, getattr(node, "inner", None)
        if node is None:
            break
    return None
