"""The semantic cache: an exact tier, then a semantic tier checked by a verifier.

    lookup(prompt, partition)        prompt -> question + context (reprise._prompt)
      1. exact tier   store.get(prompt.key(partition))                       no embedding
      2. embed        embedder.embed([question])                             LRU-cached
      3. candidates   store.search(vector, partition, k, loose, context)     nearest first
      4. verify       verifier.decide(question, candidates, threshold,       grey zone only
                                      tokens=self.tokens)

With the local model, `store` writes the question's token vectors with the entry
(from the token memory: the embedding call just made gave them), and a
candidate whose vectors the memory lacks (an entry another replica stored, or
stored before a restart) has them read from the store when the verifier asks,
in place of a model call (`_Recalling`).

Only the question is embedded and judged; the context (earlier turns, system
messages, a pasted document) must match exactly, since the store searches
within it alone. A question that does not fit the embedder's window, or a
request with no question at all, can hit only as an exact repeat.

Errors of the embedder and the store surface as `CacheError`; callers that must
stay available (the gateway) catch it and go to the backend.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from reprise._embedders.lru import LRUEmbedder
from reprise._embedders.tokens import TokenMemory, token_memory
from reprise._exceptions import EmbedderError, StoreError
from reprise._plugins import make_embedder, make_store
from reprise._prompt import Prompt, entry_key
from reprise._protocols import (
    Decision,
    Embedder,
    Entry,
    Gate,
    Hit,
    Lookup,
    Match,
    TextWindow,
    Tier,
    TokenSource,
    TokenStore,
    TokenVectors,
    Vector,
    VectorStore,
    Verifier,
)
from reprise._verify.feedback import tightened, within_limit
from reprise._verify.verifier import LearnedVerifier

#: What the cache takes as a prompt: a string (one user turn), a list of chat
#: messages (`{"role", "content", ...}` as in the chat completions API), or a
#: `Prompt` already extracted from a request.
PromptLike = str | Sequence[Mapping[str, Any]] | Prompt
logger = logging.getLogger("reprise.cache")


class ThresholdVerifier:
    """Serve the nearest candidate within the threshold: plain similarity caching."""

    async def decide(
        self,
        prompt: str,
        candidates: Sequence[Match],
        threshold: float,
        *,
        tokens: TokenSource | None = None,
    ) -> Decision:
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
    and a learned score (`reprise._verify`) at target precision 0.95, whose
    cut-offs are calibrated under the default threshold 0.2: the threshold is the
    outer edge of the grey zone, the verifier decides within it.
    `ThresholdVerifier()` serves the nearest candidate, plain similarity caching
    (use a stricter threshold with it, e.g. 0.05).
    A prompt is a string or a list of chat messages: the last user turn is
    matched by meaning, everything else exactly (`reprise._prompt`);
    `ignore_system_messages` leaves system and developer messages out of it.
    `clock` gives the Unix time entries are stamped and expire by; a store built
    from `store` uses it too (tests pass one they advance).

    When the embedder's model call also gives token vectors (the local model),
    `tokens` remembers them for the texts the cache embeds and hands them to the
    verifier; it is None otherwise.
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
        ignore_system_messages: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(
                f"score_threshold is a cosine distance in [0, 1], got {score_threshold}"
            )
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be positive seconds or None, got {ttl}")
        self.score_threshold = score_threshold
        self.ttl = ttl
        model = make_embedder(embedder)
        memory = token_memory(model)
        self.tokens: TokenSource | None = memory
        lru = LRUEmbedder(memory or model)
        if memory is not None:  # as many texts as the LRU holds vectors of
            memory.size = lru.size
        self.embedder: Embedder = lru
        # Found once: a runtime protocol check per lookup showed in the event loop's profile.
        self._window = window_of(lru)
        self.clock = clock
        self.vector_store = make_store(store, clock=clock)
        self.verifier: Verifier = verifier if verifier is not None else LearnedVerifier()
        self.candidates = candidates
        self.ignore_system_messages = ignore_system_messages

    def prompt(self, prompt: PromptLike) -> Prompt:
        """The question and context this cache keys `prompt` by."""
        return Prompt.of(prompt, ignore_system_messages=self.ignore_system_messages)

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

    async def lookup(self, prompt: PromptLike, partition: str = "") -> Hit | None:
        """The cached answer for `prompt` in `partition`, or None."""
        return (await self.explain(prompt, partition)).hit

    async def explain(
        self,
        prompt: PromptLike,
        partition: str = "",
        *,
        threshold: float | None = None,
        target_precision: float | None = None,
        gate: Gate | None = None,
        on_semantic: Callable[[], object] | None = None,
    ) -> Lookup:
        """Look up `prompt` and report how the decision was made.

        `threshold` and `target_precision` override the cache's settings for this
        lookup (the gateway's lookup policy sets them); a verifier without a
        notion of precision (`ThresholdVerifier`) ignores the latter. `gate`, if
        given, admits the semantic tier (the exact tier never waits for it).
        `on_semantic`, if given, is called as the semantic tier starts (the
        gateway starts taking its single-flight lock then, during the embedding).
        """
        threshold = self.score_threshold if threshold is None else threshold
        request = self.prompt(prompt)
        entry = await self.vector_store.get(request.key(partition))
        if entry is not None:
            return Lookup(
                _hit(entry, 0.0, "exact"), _parts(request, "exact match"), best_distance=0.0
            )
        exact_only = self._exact_only(request)
        if exact_only:
            return Lookup(None, _parts(request, f"no exact match ({exact_only}: exact only)"))
        if threshold <= 0.0:
            return Lookup(None, _parts(request, "no exact match (threshold 0: exact only)"))
        if on_semantic is not None:
            on_semantic()
        if gate is None:
            return await self._semantic(request, partition, threshold, target_precision)
        async with gate.admit():
            return await self._semantic(request, partition, threshold, target_precision)

    async def _semantic(
        self, request: Prompt, partition: str, threshold: float, target_precision: float | None
    ) -> Lookup:
        """The semantic tier: embed the question, search its context, verify."""
        question = request.question
        t0 = time.perf_counter()
        vector = (await self.embedder.embed([question]))[0]
        t1 = time.perf_counter()
        loose = self._loose(threshold)
        matches = await self.vector_store.search(
            vector, partition, k=self.candidates, max_distance=loose, context=request.context
        )
        matches = [
            m
            for m in matches
            if not _rejected(m.entry, question) and within_limit(m.entry.meta, m.distance)
        ]
        t2 = time.perf_counter()
        verifier = _at_precision(self.verifier, target_precision)
        decision = (
            await verifier.decide(question, matches, threshold, tokens=self._tokens_for(matches))
            if matches
            else None
        )
        t3 = time.perf_counter()
        best = matches[0].distance if matches else None
        hit = (
            _hit(decision.match.entry, decision.match.distance, "semantic")
            if (decision and decision.match)
            else None
        )
        none_near = (
            "no candidate"
            if not request.context
            else f"no cached question within {loose:.2f} in this context"
        )
        return Lookup(
            hit,
            _parts(request, decision.reason if decision else none_near),
            best_distance=best,
            candidates=len(matches),
            embed_ms=(t1 - t0) * 1e3,
            search_ms=(t2 - t1) * 1e3,
            verify_ms=(t3 - t2) * 1e3,
        )

    async def store(
        self,
        prompt: PromptLike,
        response: str,
        partition: str = "",
        *,
        ttl: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> str:
        """Cache `response` for `prompt` in `partition`; return the entry id."""
        request = self.prompt(prompt)
        entry_id = request.key(partition)
        tokens = None
        if self._exact_only(request):
            # Found by its id alone: a placeholder vector in a context of its own,
            # which no search ever names, so that no other request can reach it.
            vector, context = self._placeholder(), f"exact-only:{entry_id}"
        else:
            vector, context = (await self.embedder.embed([request.question]))[0], request.context
            if isinstance(self.tokens, TokenMemory):  # remembered from that call, or None
                tokens = self.tokens.encoded(request.question)
        now = self.clock()
        ttl = self.ttl if ttl is None else ttl
        entry = Entry(
            id=entry_id,
            partition=partition,
            prompt=request.question,
            response=response,
            vector=vector,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            meta=dict(meta or {}),
            context=context,
            tokens=tokens,
        )
        await self.vector_store.upsert(entry)
        return entry.id

    async def delete(self, entry_id: str) -> bool:
        return await self.vector_store.delete(entry_id)

    async def clear(self, partition: str | None = None) -> int:
        return await self.vector_store.clear(partition)

    async def mark_wrong(
        self, entry_id: str, prompt: PromptLike, *, partition: str | None = None
    ) -> bool:
        """Record that the entry was a wrong answer to `prompt`: never serve it for that again.

        `prompt` is the request served (or its question, the hit's `prompt`).
        The entry's own distance limit also tightens below this question's
        distance (`reprise._verify.feedback`), so that near rewordings miss too.
        With `partition`, an entry in another partition is left alone (False),
        as if it did not exist: a caller marks only what it could be served.
        """
        entry = await self.vector_store.get(entry_id)
        if entry is None or (partition is not None and entry.partition != partition):
            return False
        question = self.prompt(prompt).question
        if entry.prompt == question:  # wrong for its own question: wrong for everyone
            return await self.vector_store.delete(entry_id)
        rejected = sorted({*entry.meta.get("rejected", ()), _text_key(question)})
        meta = {**entry.meta, "rejected": rejected}
        if entry.vector is not None:  # learn the entry's own limit from the mark
            vector = (await self.embedder.embed([question]))[0]
            meta = tightened(meta, 1.0 - float(vector @ entry.vector))
        tokens = await self._kept_tokens(entry)
        await self.vector_store.upsert(dataclasses.replace(entry, meta=meta, tokens=tokens))
        return True

    async def _kept_tokens(self, entry: Entry) -> bytes | None:
        """`entry`'s token vectors, to write back with it: as `get` gave them, else as
        remembered, else as stored (a replica that never judged the entry marks it too)."""
        if entry.tokens is not None:
            return entry.tokens
        if isinstance(self.tokens, TokenMemory):
            blob = self.tokens.encoded(entry.prompt)
            if blob is not None:
                return blob
        if isinstance(self.vector_store, TokenStore):
            return (await self.vector_store.stored_tokens([entry.id])).get(entry.id)
        return None

    def _tokens_for(self, matches: Sequence[Match]) -> TokenSource | None:
        """The token source for judging `matches`: the memory itself when it knows every
        candidate's prompt, else one that reads the others' stored vectors first."""
        memory = self.tokens
        if not isinstance(memory, TokenMemory):
            return memory
        unknown = {m.entry.prompt: m.entry for m in matches if not memory.knows(m.entry.prompt)}
        return _Recalling(memory, unknown, self.vector_store) if unknown else memory

    def _loose(self, threshold: float) -> float:
        # Candidates come from a little beyond the threshold so the verifier can
        # see the neighbourhood; the threshold itself is still enforced there.
        return min(1.0, threshold * 1.5 + 0.02)

    def _exact_only(self, request: Prompt) -> str:
        """Why `request` may hit only as an exact repeat, or "" if it may hit by meaning."""
        if request.exact_only:
            return request.exact_only
        if self._window is not None and not self._window.fits(request.question):
            return f"the question ({len(request.question)} chars) is longer than the model reads"
        return ""

    def _placeholder(self) -> Vector:
        vector = np.zeros(self.embedder.dims, dtype=np.float32)
        vector[0] = 1.0
        return vector


class _Recalling:
    """The token memory, after the stored vectors of the texts asked for that it lacks.

    Read when the verifier asks (it asks only for the candidates it judges),
    from the entry if the search returned them, else from a `TokenStore` in one
    call. Vectors missing, unreadable or foreign (another model's), or a store
    error, leave the text to the memory's model call, as before they were stored.
    """

    def __init__(self, memory: TokenMemory, entries: dict[str, Entry], store: VectorStore) -> None:
        self.memory = memory
        self.entries = entries
        self.store = store

    async def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        wanted = [self.entries[t] for t in dict.fromkeys(texts) if t in self.entries]
        wanted = [e for e in wanted if not self.memory.knows(e.prompt)]
        if wanted:
            await self._recall(wanted)
        return await self.memory.token_vectors(texts)

    async def _recall(self, entries: list[Entry]) -> None:
        blobs = {e.id: e.tokens for e in entries if e.tokens is not None}
        rest = [e.id for e in entries if e.id not in blobs]
        if rest and isinstance(self.store, TokenStore):
            try:
                blobs.update(await self.store.stored_tokens(rest))
            except StoreError as exc:
                logger.debug("stored token vectors not read, judging with a model call: %s", exc)
        for entry in entries:
            blob = blobs.get(entry.id)
            if blob is not None and not self.memory.learn(entry.prompt, blob):
                logger.debug("entry %s: its stored token vectors are unreadable", entry.id)


def _at_precision(verifier: Verifier, target_precision: float | None) -> Verifier:
    at = getattr(verifier, "at", None)
    if target_precision is None or at is None:
        return verifier
    return at(target_precision)  # type: ignore[no-any-return]


def _hit(entry: Entry, distance: float, tier: Tier) -> Hit:
    return Hit(entry.id, entry.prompt, entry.response, distance, tier, entry.meta)


def window_of(embedder: Embedder) -> TextWindow | None:
    """The first in `embedder`'s wrapper chain that can tell whether a text fits, if any.

    Wrappers (the LRU, the token memory) keep what they wrap in
    `inner`; an embedder that cannot tell (no `fits`) is trusted.
    """
    node: object = embedder
    for _ in range(8):  # a chain of wrappers, never a cycle
        if isinstance(node, TextWindow):
            return node
        node = getattr(node, "inner", None)
        if node is None:
            break
    return None


def _parts(request: Prompt, reason: str) -> str:
    """The lookup's reason, saying how each part matched when there is a context."""
    if not request.context:
        return reason
    return f"context: {request.describe_context()}; question: {reason}"


def _text_key(prompt: str) -> str:
    return entry_key("", "", prompt)[:16]


def _rejected(entry: Entry, prompt: str) -> bool:
    rejected = entry.meta.get("rejected")
    return isinstance(rejected, list) and _text_key(prompt) in rejected
