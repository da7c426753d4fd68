"""The plug-in points and the types that cross them.

`Embedder` turns text into vectors, `VectorStore` keeps entries, `RateLimiter`
counts calls, `Gate` admits lookups, `Verifier` decides which candidate (if any)
answers a prompt; `AdminStore` is what a store adds so that it can be operated
(stats, export, eviction). All are structural Protocols, so a plug-in needs no
base class, only these methods. Vectors are float32 and L2-normalised: cosine
distance is then `1 - a @ b`, the unit every store reports and
`score_threshold` is given in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
"""One embedding (shape `(dims,)`) or a batch of them (shape `(n, dims)`)."""

KEY_LAYOUT = 2
"""How entry ids and contexts are derived from requests (`reprise._prompt`).

Layout 1 keyed a whole request flattened into one text; layout 2 keys the
question with an exact context digest. A store drops entries of another
layout when it opens: their ids and vectors mean something else.
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached question and its response.

    `prompt` is the question, the text that was embedded; `context` the digest
    of everything else the answer depends on ("" for a lone question), which a
    search must match exactly. `id` is `Prompt.key(partition)`: storing the same
    question in the same context and partition again replaces the entry, and
    the exact tier is a key lookup. `expires_at` is a Unix time; `None` keeps
    the entry until deleted. `meta` holds small JSON-able facts (verifier
    feedback, the response's shape). `tokens` is the prompt's token vectors,
    encoded (`reprise._embedders.token_blob`), when the local model embedded it:
    a store keeps them with the entry (a `TokenStore` reads them back on their
    own; `get` and `search` may leave them out).
    """

    id: str
    partition: str
    prompt: str
    response: str
    vector: Vector | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    context: str = ""
    tokens: bytes | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """A search result: an entry (its vector may be left out) and its cosine distance."""

    entry: Entry
    distance: float


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of `dims` dimensions."""

    @property
    def dims(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vector:
        """Return an `(len(texts), dims)` array. Raise `EmbedderError` on failure."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TextWindow(Protocol):
    """An embedder that can tell whether a text fits its input window (optional).

    The cache embeds a question only if it fits: a text past the window would
    be silently truncated, and two texts that differ only past it would look
    the same. An embedder without `fits` is trusted with the cache's
    question-sized texts.
    """

    def fits(self, text: str) -> bool: ...


@runtime_checkable
class VectorStore(Protocol):
    """Keeps entries and finds the nearest ones within a partition.

    Every method raises `StoreError` (or a subclass) on failure. Expired
    entries are never returned, whatever the backend's clean-up schedule.
    """

    async def open(self, dims: int) -> None:
        """Connect and create the index if missing; `IndexMismatch` if it disagrees.

        Entries written in another `KEY_LAYOUT` are dropped here, with a log line."""
        ...

    async def aclose(self) -> None: ...

    async def get(self, entry_id: str) -> Entry | None:
        """The live entry with this id, vector included, or None (the exact tier)."""
        ...

    async def search(
        self, vector: Vector, partition: str, *, k: int, max_distance: float, context: str = ""
    ) -> list[Match]:
        """Up to `k` live entries of `partition` and exactly `context` within
        `max_distance`, nearest first."""
        ...

    async def upsert(self, entry: Entry) -> None:
        """Insert or replace the entry with `entry.id` (its vector is required)."""
        ...

    async def delete(self, entry_id: str) -> bool:
        """Remove one entry; True if it existed."""
        ...

    async def clear(self, partition: str | None = None) -> int:
        """Remove every entry of `partition` (all its contexts), or all; return how many."""
        ...


@runtime_checkable
class TokenStore(Protocol):
    """A store that reads entries' stored `tokens` back apart from the entries (optional).

    The cache asks only for candidates the verifier will judge and whose token
    vectors it does not remember, so that neither the exact tier nor a search
    carries them.
    """

    async def stored_tokens(self, entry_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored `tokens` of those of `entry_ids` that have them."""
        ...


class Gate(Protocol):
    """Admits the semantic part of a lookup (the model call), after the exact tier.

    `admit()` runs its body as one admitted lookup, or raises a `CacheError`
    (`LookupShed`) without running it; the gateway's is `_gateway.admission`.
    """

    def admit(self) -> AbstractAsyncContextManager[None]: ...


class RateLimiter(Protocol):
    """Counts calls per key in fixed windows (`<rate-limit>`, `<rate-limit-by-key>`).

    A window of `period` seconds starts at a key's first call, as APIM's renewal
    period does; refused calls are not counted.
    """

    async def hit(self, key: str, calls: int, period: float) -> tuple[bool, float]:
        """Count one call for `key`; return (allowed, seconds until the window renews)."""


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """What one partition of a store holds: live entries, their bytes, their age.

    `bytes` counts the stored prompt, response, vector, meta and token vectors
    (what the entries themselves weigh, not the backend's bookkeeping); `oldest` and
    `newest` are the entries' `created_at` (Unix time), None when empty.
    """

    partition: str
    entries: int
    bytes: int
    oldest: float | None
    newest: float | None


@runtime_checkable
class AdminStore(Protocol):
    """What operating a store needs beyond `VectorStore`: counting, listing, evicting.

    Optional: the gateway's admin API and `reprise cache` use it when the store
    has it (both built-in stores do) and say so when it does not.
    """

    @property
    def evictions(self) -> int:
        """Entries removed to stay within a size bound since the store opened."""
        ...

    async def partition_stats(self) -> list[PartitionStats]:
        """One `PartitionStats` per partition with live entries."""
        ...

    def entries(self, partition: str | None = None) -> AsyncIterator[Entry]:
        """Every live entry (of `partition`, or all), vectors included, in no set order."""
        ...


class TokenVectors(Protocol):
    """One text's word pieces (`"##s"` continues a word) and their contextual vectors."""

    @property
    def tokens(self) -> Sequence[str]: ...

    @property
    def vectors(self) -> Vector:
        """`(len(tokens), dims)`, L2-normalised."""
        ...


class TokenEmbeddings(TokenVectors, Protocol):
    @property
    def sentence(self) -> Vector: ...


@runtime_checkable
class TokenEmbedder(Embedder, Protocol):
    """An embedder whose model call can also return per-token vectors (the local model)."""

    async def embed_tokens(self, texts: Sequence[str]) -> Sequence[TokenEmbeddings]: ...


class TokenSource(Protocol):
    """Hands a verifier the token vectors of texts: remembered ones free, the rest in one call."""

    async def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]: ...


Tier = Literal["exact", "semantic"]


@dataclass(frozen=True, slots=True)
class Hit:
    """A cached answer. `score` is the cosine distance of the matched prompt (0 = same)."""

    id: str
    prompt: str
    response: str
    score: float
    tier: Tier
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the verifier made of the candidates: the one to serve, if any, and why."""

    match: Match | None
    reason: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """Everything one lookup found out; the gateway's trace is made from this."""

    hit: Hit | None
    reason: str
    best_distance: float | None = None
    candidates: int = 0
    embed_ms: float = 0.0
    search_ms: float = 0.0
    verify_ms: float = 0.0


class Verifier(Protocol):
    """Chooses which candidate, if any, answers `prompt`.

    `candidates` are nearest first, each already within the entry's own
    feedback limit; `threshold` is the cosine distance the cache serves within.
    `tokens`, when the embedder is the local model, gives the token vectors of
    the prompt and of candidates' prompts (most are remembered from the
    embedding calls the cache made anyway); a verifier that reads none ignores it.
    """

    async def decide(
        self,
        prompt: str,
        candidates: Sequence[Match],
        threshold: float,
        *,
        tokens: TokenSource | None = None,
    ) -> Decision: ...
