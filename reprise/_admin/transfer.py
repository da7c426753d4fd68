"""Exporting a cache as JSONL and importing it back (into this or another cache).

One line per live entry:

    {"id": ..., "prompt": ..., "context": ..., "response": ..., "partition": ..., "model": ...,
     "expires_at": ..., "created_at": ..., "input_tokens": ..., "output_tokens": ...,
     "backend_ms": ...}

`prompt` is the entry's question (the text the lookup embeds), `context` the
digest of the rest of its request (matched exactly), `response` the answer as
stored, `expires_at` a Unix time or null. An import embeds questions in
batches (one model call per batch; the cache's LRU then serves each store's
embedding) and skips, with a reason, every line it cannot use. A line whose
context marks an exact-only entry (a question longer than the model reads)
keeps its `id`, by which alone it is found.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reprise._admin.savings import KEY, Savings, from_meta
from reprise._cache import SemanticCache
from reprise._prompt import Prompt
from reprise._protocols import AdminStore, Entry

BATCH = 64
EXACT_ONLY = "exact-only:"  # the context `SemanticCache.store` gives exact-only entries
SAMPLES = 20  # skipped lines named in a report (by number), beyond that only counted


def export_line(entry: Entry) -> bytes:
    saved = from_meta(entry.meta)
    line = {
        "id": entry.id,
        "prompt": entry.prompt,
        "context": entry.context,
        "response": entry.response,
        "partition": entry.partition,
        "model": saved.model or None,
        "expires_at": entry.expires_at,
        "created_at": entry.created_at,
        "input_tokens": saved.input_tokens,
        "output_tokens": saved.output_tokens,
        "backend_ms": saved.backend_ms,
    }
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"


async def export_lines(store: AdminStore, partition: str | None = None) -> AsyncIterator[bytes]:
    async for entry in store.entries(partition):
        yield export_line(entry)


@dataclass(slots=True)
class ImportReport:
    """How an import went: entries stored, lines skipped and why."""

    imported: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, number: int, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.samples) < SAMPLES:
            self.samples.append({"line": number, "reason": reason})

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "reasons": dict(self.reasons),
            "skipped_lines": self.samples,
        }


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    prompt: Prompt
    id: str
    response: str
    partition: str
    ttl: float | None
    savings: Savings


async def import_lines(
    cache: SemanticCache,
    lines: AsyncIterator[bytes] | Iterable[bytes],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Store every usable line in `cache`; `progress(n)` as each n more lines are done."""
    report = ImportReport()
    batch: list[_Line] = []
    number = done = 0
    async for raw in _aiter(lines):
        number += 1
        parsed = _parse(number, raw, report) if raw.strip() else None
        if parsed is not None:
            batch.append(parsed)
        if len(batch) >= BATCH:
            await _store_batch(cache, batch, report)
            batch = []
            if progress is not None:
                progress(number - done)
            done = number
    if batch:
        await _store_batch(cache, batch, report)
    if progress is not None and number > done:
        progress(number - done)
    return report


def _parse(number: int, raw: bytes, report: ImportReport) -> _Line | None:
    try:
        line = json.loads(raw)
    except ValueError:
        report.skip(number, "not JSON")
        return None
    if not isinstance(line, dict):
        report.skip(number, "not a JSON object")
        return None
    prompt, response = line.get("prompt"), line.get("response")
    partition, context = line.get("partition", ""), line.get("context", "")
    entry_id = line.get("id", "")
    if not isinstance(prompt, str) or not prompt or not isinstance(response, str):
        report.skip(number, "prompt and response must be strings")
        return None
    if not all(isinstance(v, str) for v in (partition, context, entry_id)):
        report.skip(number, "partition, context and id must be strings")
        return None
    if context.startswith(EXACT_ONLY) and not entry_id:
        report.skip(number, "an exact-only entry needs its id")
        return None
    expires = line.get("expires_at")
    if expires is not None and not isinstance(expires, int | float):
        report.skip(number, "expires_at must be a Unix time or null")
        return None
    ttl = None if expires is None else expires - time.time()
    if ttl is not None and ttl <= 0:
        report.skip(number, "expired")
        return None
    saved = from_meta({KEY: line})
    return _Line(number, Prompt(prompt, context), entry_id, response, partition, ttl, saved)


async def _store_batch(cache: SemanticCache, batch: list[_Line], report: ImportReport) -> None:
    # One model call for the batch; each store below then finds its vector in the LRU.
    embedded = [line for line in batch if not line.prompt.context.startswith(EXACT_ONLY)]
    if embedded:
        await cache.embedder.embed([line.prompt.question for line in embedded])
    for line in batch:
        exact = line.prompt.context.startswith(EXACT_ONLY)
        entry_id = line.id if exact else line.prompt.key(line.partition)
        known = await cache.vector_store.get(entry_id)
        if known is not None and known.response == line.response:
            report.skip(line.number, "already cached")
            continue
        meta = {KEY: line.savings.as_meta()}
        if exact:
            await _store_exact(cache, line, meta)
        else:
            await cache.store(line.prompt, line.response, line.partition, ttl=line.ttl, meta=meta)
        report.imported += 1


async def _store_exact(cache: SemanticCache, line: _Line, meta: dict[str, Any]) -> None:
    """An exact-only entry as it was: its id, its own context, no meaningful vector."""
    now = time.time()
    vector = np.zeros(cache.embedder.dims, dtype=np.float32)
    vector[0] = 1.0  # a unit vector, as a store requires; no search reaches this context
    entry = Entry(
        id=line.id,
        partition=line.partition,
        prompt=line.prompt.question,
        response=line.response,
        vector=vector,
        created_at=now,
        expires_at=None if line.ttl is None else now + line.ttl,
        meta=meta,
        context=line.prompt.context,
    )
    await cache.vector_store.upsert(entry)


async def _aiter(lines: AsyncIterator[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if hasattr(lines, "__aiter__"):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line
