"""The semantic cache: an exact tier, then a semantic tier checked by a verifier.

    lookup(prompt, partition)
      1. exact tier   store.get(prompt_key(partition, prompt))       no embedding
      2. embed        embedder.embed([prompt])                         LRU-cached
      3. candidates   store.search(vector, partition, k, loose)        nearest first
      4. verify       verifier.decide(prompt, candidates, threshold)   grey zone only

Errors of the embedder and the store surface as `CacheError`; callers that must
stay available (the gateway) catch it and go to the backend.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

from reprise._backends import make_embedder, make_store
from reprise._embedders.lru import LRUEmbedder
from reprise._exceptions import EmbedderError
from reprise._protocols import Embedder, Entry, Match, VectorStore
from reprise._request import prompt_key
from reprise._verify.feedback import tightened, within_limit

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
    """Chooses which candidate, if any, answers `prompt`."""

    async def decide(
        self, prompt: str, candidates: Sequence[Match], threshold: float
    ) -> Decision: ...


class ThresholdVerifier:
    """Serve the nearest candidate within the threshold: plain similarity caching."""

    async def decide(self, prompt: str, candidates: Sequence[Match], threshold: float) -> Decision:
        for match in candidates:
            if match.distance <= threshold:
                return Decision(match, f"distance {match.distance:.4f} <= {threshold}")
        return Decision(None, "no candidate within the threshold")


class SemanticCache:
    """Cache LLM responses by meaning.

    `score_threshold` is a cosine distance in [0, 1]: a prompt hits when its
    distance to a cached prompt is at most this; 0 allows exact repeats only.
    `ttl` is in seconds (None: keep until deleted). `store` is a data directory,
    `":memory:"`, a `redis://` URL or a `VectorStore`; `embedder` is `"local"`, a
    model directory, an embeddings endpoint URL or an `Embedder`. `verifier`
    decides among the candidates within the threshold: by default rule checks
    and a learned score (`reprise._verify`) at target precision 0.90, whose
    cut-offs are calibrated under the default threshold 0.2: the threshold is the
    outer edge of the grey zone, the verifier decides within it.
    `ThresholdVerifier()` serves the nearest candidate, plain similarity caching
    (use a stricter threshold with it, e.g. 0.05).
    """

    def __init__(
        self,
        *,
        score_threshold: float = 0.2,
        ttl: float | None = 3600,
        store: str | Path | VectorStore = "./reprise-data",
        embedder: str | Embedder = "local",
        verifier: Verifier | None = None,
        candidates: int = 5,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(
                f"score_threshold is a cosine distance in [0, 1], got {score_threshold}"
            )
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be positive seconds or None, got {ttl}")
        self.score_threshold = score_threshold
        self.ttl = ttl
        # The embedder first: onnxruntime segfaults on import once usearch is
        # loaded (the reverse order is fine), and each is imported on first use.
        self.embedder: Embedder = LRUEmbedder(make_embedder(embedder))
        self.vector_store = make_store(store)
        self.verifier = verifier if verifier is not None else _default_verifier()
        self.candidates = candidates

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    @verifier.setter
    def verifier(self, verifier: Verifier) -> None:
        # A verifier that reads token vectors (the default) takes them from
        # this cache's own embedding calls; `bind` is how it finds them.
        bind = getattr(verifier, "bind", None)
        if bind is not None:
            bind(self.embedder)
        self._verifier = verifier

    async def open(self) -> None:
        try:
            dims = self.embedder.dims
        except EmbedderError:
            # A remote embedder given no `dims=` learns them from its first answer.
            await self.embedder.embed(["dimensions probe"])
            dims = self.embedder.dims
        await self.vector_store.open(dims)

    async def aclose(self) -> None:
        await self.vector_store.aclose()
        await self.embedder.aclose()

    async def __aenter__(self) -> SemanticCache:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def lookup(self, prompt: str, partition: str = "") -> Hit | None:
        """The cached answer for `prompt` in `partition`, or None."""
        return (await self.explain(prompt, partition)).hit

    async def explain(
        self,
        prompt: str,
        partition: str = "",
        *,
        threshold: float | None = None,
        target_precision: float | None = None,
    ) -> Lookup:
        """Look up `prompt` and report how the decision was made.

        `threshold` and `target_precision` override the cache's settings for this
        lookup (the gateway's lookup policy sets them); a verifier without a
        notion of precision (`ThresholdVerifier`) ignores the latter.
        """
        threshold = self.score_threshold if threshold is None else threshold
        entry = await self.vector_store.get(prompt_key(partition, prompt))
        if entry is not None:
            return Lookup(_hit(entry, 0.0, "exact"), "exact match", best_distance=0.0)
        if threshold <= 0.0:
            return Lookup(None, "no exact match (threshold 0: exact only)")
        t0 = time.perf_counter()
        vector = (await self.embedder.embed([prompt]))[0]
        t1 = time.perf_counter()
        matches = await self.vector_store.search(
            vector, partition, k=self.candidates, max_distance=self._loose(threshold)
        )
        matches = [
            m
            for m in matches
            if not _rejected(m.entry, prompt) and within_limit(m.entry.meta, m.distance)
        ]
        t2 = time.perf_counter()
        verifier = _at_precision(self.verifier, target_precision)
        decision = await verifier.decide(prompt, matches, threshold) if matches else None
        t3 = time.perf_counter()
        best = matches[0].distance if matches else None
        hit = (
            _hit(decision.match.entry, decision.match.distance, "semantic")
            if (decision and decision.match)
            else None
        )
        return Lookup(
            hit,
            decision.reason if decision else "no candidate",
            best_distance=best,
            candidates=len(matches),
            embed_ms=(t1 - t0) * 1e3,
            search_ms=(t2 - t1) * 1e3,
            verify_ms=(t3 - t2) * 1e3,
        )

    async def store(
        self,
        prompt: str,
        response: str,
        partition: str = "",
        *,
        ttl: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> str:
        """Cache `response` for `prompt` in `partition`; return the entry id."""
        vector = (await self.embedder.embed([prompt]))[0]
        now = time.time()
        ttl = self.ttl if ttl is None else ttl
        entry = Entry(
            id=prompt_key(partition, prompt),
            partition=partition,
            prompt=prompt,
            response=response,
            vector=vector,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            meta=dict(meta or {}),
        )
        await self.vector_store.upsert(entry)
        return entry.id

    async def delete(self, entry_id: str) -> bool:
        return await self.vector_store.delete(entry_id)

    async def clear(self, partition: str | None = None) -> int:
        return await self.vector_store.clear(partition)

    async def mark_wrong(self, entry_id: str, prompt: str) -> bool:
        """Record that the entry was a wrong answer to `prompt`: never serve it for that again.

        The entry's own distance limit also tightens below this prompt's distance
        (`reprise._verify.feedback`), so that near rewordings of it miss too.
        """
        entry = await self.vector_store.get(entry_id)
        if entry is None:
            return False
        if entry.prompt == prompt:  # wrong for its own prompt: wrong for everyone
            return await self.vector_store.delete(entry_id)
        rejected = sorted({*entry.meta.get("rejected", ()), _text_key(prompt)})
        meta = {**entry.meta, "rejected": rejected}
        if entry.vector is not None:  # learn the entry's own limit from the mark
            vector = (await self.embedder.embed([prompt]))[0]
            meta = tightened(meta, 1.0 - float(vector @ entry.vector))
        await self.vector_store.upsert(_replace_meta(entry, meta))
        return True

    def _loose(self, threshold: float) -> float:
        # Candidates come from a little beyond the threshold so the verifier can
        # see the neighbourhood; the threshold itself is still enforced there.
        return min(1.0, threshold * 1.5 + 0.02)


def _default_verifier() -> Verifier:
    # Imported here: the verifier package builds on this module's Decision.
    from reprise._verify import default_verifier

    return default_verifier()


def _at_precision(verifier: Verifier, target_precision: float | None) -> Verifier:
    at = getattr(verifier, "at", None)
    if target_precision is None or at is None:
        return verifier
    return at(target_precision)  # type: ignore[no-any-return]


def _hit(entry: Entry, distance: float, tier: Tier) -> Hit:
    return Hit(entry.id, entry.prompt, entry.response, distance, tier, entry.meta)


def _text_key(prompt: str) -> str:
    return prompt_key("", prompt)[:16]


def _rejected(entry: Entry, prompt: str) -> bool:
    rejected = entry.meta.get("rejected")
    return isinstance(rejected, list) and _text_key(prompt) in rejected


def _replace_meta(entry: Entry, meta: Mapping[str, Any]) -> Entry:
    return Entry(
        entry.id,
        entry.partition,
        entry.prompt,
        entry.response,
        entry.vector,
        entry.created_at,
        entry.expires_at,
        meta,
    )
