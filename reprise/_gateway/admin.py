"""The admin API under `/reprise/admin/`: stats, purge, export, import, the dashboard.

    GET    /reprise/admin/                     the dashboard (HTML; its JS calls the rest)
    GET    /reprise/admin/stats                entries, bytes, evictions, hits... and savings,
                                               per cache, API and partition
    GET    /reprise/admin/activity             hit rate per minute, latency percentiles,
                                               the last 100 decisions
    DELETE /reprise/admin/entries              empty every cache (?cache=NAME: one)
    DELETE /reprise/admin/entries/{id}         one entry
    DELETE /reprise/admin/partitions/{digest}  one partition (as stats shows it)
    GET    /reprise/admin/export               JSONL, streamed (?cache=NAME&partition=DIGEST)
    POST   /reprise/admin/import               JSONL body -> {imported, skipped, reasons}
    POST   /reprise/admin/decisions/{n}/wrong  the "wrong answer" button: feedback for a
                                               recent hit, with the prompt the gateway kept

Off unless the config has `admin: {key: ...}`: then every path here is a 404,
as if it did not exist. On, every request must carry `Authorization: Bearer
<admin key>`, compared in constant time; anything else (a subscription key
included) is a 401. A browser opening the dashboard without the header gets
the page with the 401, and its script asks for the key. Errors are in
OpenAI's shape, like the rest of the gateway.
"""

from __future__ import annotations

import hmac
import importlib.resources
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from reprise._admin.stats import StoreStats, admin_store, digest, partition_json, store_stats
from reprise._admin.transfer import export_lines, import_lines
from reprise._cache import SemanticCache
from reprise._embedders.lru import LRUEmbedder
from reprise._embedders.tokens import TokenMemory
from reprise._exceptions import CacheError
from reprise._gateway.adminconfig import AdminSettings
from reprise._gateway.asgi import Exchange, Receive, bearer, body_chunks, header
from reprise._gateway.caches import CacheSlot
from reprise._gateway.config import GatewayConfig
from reprise._gateway.errors import JSON_HEADERS, GatewayError
from reprise._gateway.ledger import Decision, EvictionCollector, Ledger
from reprise._gateway.metrics import Metrics

ADMIN_PATH = "/reprise/admin"
HTML_HEADERS = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
NDJSON_HEADERS = [(b"content-type", b"application/x-ndjson")]
_EXPORT_CHUNK = 64  # lines per body message of an export
_IMPORT_LIMIT = 1 << 40  # an import streams; only one line must fit in memory
#: How long a store's counts are reused: counting reads every entry (a SCAN on Redis), and
#: an open dashboard asks every few seconds. An admin change forgets them at once.
STATS_TTL = 10.0


def _dashboard() -> bytes:
    return (importlib.resources.files("reprise._admin") / "dashboard.html").read_bytes()


class Admin:
    """The admin routes of one gateway, over its caches and its ledger."""

    def __init__(
        self,
        config: GatewayConfig,
        slots: Mapping[str, CacheSlot],
        ledger: Ledger,
        metrics: Metrics,
    ) -> None:
        self.settings: AdminSettings | None = config.admin
        self.max_line = config.max_body_bytes
        self.slots = slots
        self.ledger = ledger
        metrics.registry.register(EvictionCollector(self.evictions))
        self._page = _dashboard() if self.settings is not None else b""
        self._counted: dict[str, tuple[float, StoreStats]] = {}  # cache -> (when, stats)

    def evictions(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, slot in self.slots.items():
            store = slot.cache.vector_store if slot.cache is not None else None
            counts[name] = int(getattr(store, "evictions", 0))
        return counts

    async def handle(self, ex: Exchange, receive: Receive) -> None:
        path, method = ex.scope["path"], ex.scope["method"]
        if self.settings is None:
            raise GatewayError(404, f"no API is configured for path {path!r}", code="not_found")
        route = path[len(ADMIN_PATH) :].strip("/")
        if not self._authorised(ex):
            if route == "" and method == "GET" and _wants_html(ex):
                await ex.respond(401, HTML_HEADERS, self._page)  # the page asks for the key
                return
            raise GatewayError(
                401,
                "the admin API needs 'Authorization: Bearer <admin key>'",
                type="authentication_error",
                code="invalid_admin_key",
            )
        ex.log["admin"] = f"{method} {route or '/'}"
        if method != "GET":
            self._counted.clear()  # a purge or an import: the next stats count afresh
        await self._dispatch(ex, receive, method, route.split("/"))

    def _authorised(self, ex: Exchange) -> bool:
        assert self.settings is not None
        value = header(ex.scope, b"authorization")
        token = bearer(value) if value is not None else None
        return token is not None and hmac.compare_digest(token.encode(), self.settings.key.encode())

    async def _dispatch(
        self, ex: Exchange, receive: Receive, method: str, parts: list[str]
    ) -> None:
        query = parse_qs(ex.scope["query_string"].decode("latin-1"))
        match method, parts:
            case "GET", [""]:
                await ex.respond(200, HTML_HEADERS, self._page)
            case "GET", ["stats"]:
                await _json(ex, await self.stats())
            case "GET", ["activity"]:
                await _json(ex, self.activity())
            case "DELETE", ["entries"]:
                await _json(ex, await self.purge(_one(query, "cache")))
            case "DELETE", ["entries", entry_id]:
                await self.delete_entry(ex, entry_id)
            case "DELETE", ["partitions", shown]:
                await self.delete_partition(ex, shown)
            case "GET", ["export"]:
                await self.export(ex, _one(query, "cache"), _one(query, "partition"))
            case "POST", ["import"]:
                await self.import_(ex, receive, _one(query, "cache"))
            case "POST", ["decisions", number, "wrong"]:
                await self.wrong_answer(ex, number)
            case _, ["" | "stats" | "activity" | "entries" | "partitions" | "export" | "import"]:
                raise GatewayError(405, f"{method} is not allowed here", code="method_not_allowed")
            case _:
                raise GatewayError(
                    404, f"no admin endpoint at {ex.scope['path']!r}", code="not_found"
                )

    # -- reading

    async def stats(self) -> dict[str, Any]:
        assert self.settings is not None
        names = self.settings.show_partition_names
        caches, entries, evictions, size = [], 0, 0, 0
        for name, slot in self.slots.items():
            cache = self._cache_json(name, slot)
            if slot.cache is not None:
                try:
                    found = await self._store_stats(name, slot.cache)
                except CacheError as exc:
                    cache["error"] = f"{type(exc).__name__}: {exc}"
                else:
                    cache.update(found.as_json())
                    cache["partitions"] = [
                        {**partition_json(p, names=names), **self._tally(name, p.partition)}
                        for p in found.partitions
                    ]
                    entries += found.entries
                    evictions += found.evictions
                    size += found.bytes
            caches.append(cache)
        apis = [{"name": api, **tally.as_json()} for api, tally in self.ledger.by_api.items()]
        totals = {"entries": entries, "evictions": evictions, "bytes": size}
        return {**totals, **self.ledger.total.as_json(), "caches": caches, "apis": apis}

    async def _store_stats(self, name: str, cache: SemanticCache) -> StoreStats:
        counted = self._counted.get(name)
        if counted is not None and time.monotonic() - counted[0] < STATS_TTL:
            return counted[1]
        found = await store_stats(cache.vector_store)
        self._counted[name] = (time.monotonic(), found)
        return found

    def _cache_json(self, name: str, slot: CacheSlot) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "status": slot.error or "open"}
        if slot.cache is not None:
            store = slot.cache.vector_store
            out["store"] = type(store).__name__
            out["max_entries"] = getattr(store, "max_entries", None)
            out["max_bytes"] = getattr(store, "max_bytes", None)
            out["memory"] = _memory_json(slot.cache)
        tally = self.ledger.by_cache.get(name)
        return {**out, **(tally.as_json() if tally else {})}

    def _tally(self, cache: str, partition: str) -> dict[str, Any]:
        tally = self.ledger.by_partition.get((cache, partition))
        return tally.as_json() if tally is not None else {}

    def activity(self) -> dict[str, Any]:
        timeline = [
            {"minute": minute * 60, "hits": hits, "lookups": n, "hit_rate": hits / n}
            for minute, hits, n in self.ledger.timeline
        ]
        recent = [self._decision_json(d) for d in reversed(self.ledger.recent)]
        return {
            "timeline": timeline,
            "latency": self.ledger.percentiles(),
            "recent": recent,
        }

    def _decision_json(self, decision: Decision) -> dict[str, Any]:
        assert self.settings is not None
        out: dict[str, Any] = {
            "number": decision.number,
            "at": decision.at,
            "api": decision.api,
            "cache": decision.cache,
            "partition": digest(decision.partition) if decision.partition else "",
            "status": decision.status,
            "reason": decision.reason,
            "ms": decision.ms,
            "http_status": decision.http_status,
            "entry": decision.entry,
            "score": decision.score,
        }
        if self.settings.show_partition_names:
            out["partition_name"] = decision.partition
        if self.settings.show_prompts:
            out["prompt"] = decision.prompt
        return out

    # -- changing

    async def purge(self, only: str | None) -> dict[str, Any]:
        deleted: dict[str, int] = {}
        for name, cache in self._caches(only).items():
            deleted[name] = await _guarded(cache.clear())
        return {"deleted": sum(deleted.values()), "caches": deleted}

    async def delete_entry(self, ex: Exchange, entry_id: str) -> None:
        for cache in self._caches(None).values():
            if await _guarded(cache.delete(entry_id)):
                await _json(ex, {"deleted": 1, "entry": entry_id})
                return
        raise GatewayError(404, f"no cached entry {entry_id!r}", code="not_found")

    async def delete_partition(self, ex: Exchange, shown: str) -> None:
        deleted, found = 0, False
        for cache in self._caches(None).values():
            stats = await _guarded(store_stats(cache.vector_store))
            for partition in stats.partitions:
                if shown in (digest(partition.partition), partition.partition):
                    found = True
                    deleted += await _guarded(cache.clear(partition.partition))
        if not found:
            raise GatewayError(404, f"no partition {shown!r} holds entries", code="not_found")
        await _json(ex, {"deleted": deleted, "partition": shown})

    async def export(self, ex: Exchange, only: str | None, shown: str | None) -> None:
        caches = self._caches(only)
        await ex.start(200, NDJSON_HEADERS)
        for cache in caches.values():
            partitions: list[str | None] = [None]
            if shown is not None:
                stats = await _guarded(store_stats(cache.vector_store))
                partitions = [p.partition for p in stats.partitions if digest(p.partition) == shown]
            for partition in partitions:
                lines: list[bytes] = []
                async for line in export_lines(admin_store(cache.vector_store), partition):
                    lines.append(line)
                    if len(lines) >= _EXPORT_CHUNK:
                        await ex.body(b"".join(lines), more=True)
                        lines = []
                if lines:
                    await ex.body(b"".join(lines), more=True)
        await ex.body(b"", more=False)

    async def import_(self, ex: Exchange, receive: Receive, only: str | None) -> None:
        caches = self._caches(only)
        if len(caches) != 1:
            names = ", ".join(caches)
            raise GatewayError(
                400, f"name the cache to import into: ?cache=NAME (one of {names})", param="cache"
            )
        ((name, cache),) = caches.items()
        chunks = body_chunks(receive, _IMPORT_LIMIT)
        report = await _guarded(import_lines(cache, _lines(chunks, self.max_line)))
        await _json(ex, {"cache": name, **report.as_json()})

    async def wrong_answer(self, ex: Exchange, number: str) -> None:
        decision = self.ledger.decision(int(number)) if number.isdigit() else None
        if decision is None or decision.entry is None:
            raise GatewayError(404, f"no recent hit numbered {number!r}", code="not_found")
        cache = self._caches(decision.cache)[decision.cache]
        marked = await _guarded(cache.mark_wrong(decision.entry, decision.prompt))
        await _json(ex, {"entry": decision.entry, "marked": marked}, 200 if marked else 404)

    def _caches(self, only: str | None) -> dict[str, SemanticCache]:
        """The open caches (or the one named); a 404 for an unknown name, 503 if not open."""
        if only is not None and only not in self.slots:
            known = ", ".join(self.slots)
            raise GatewayError(404, f"no cache {only!r} (configured: {known})", code="not_found")
        out: dict[str, SemanticCache] = {}
        for name, slot in self.slots.items():
            if only not in (None, name):
                continue
            if slot.cache is None:
                raise _unavailable(name, slot.error)
            out[name] = slot.cache
        return out


async def _guarded(awaitable: Any) -> Any:
    """Await a cache operation; its failure is a 503, never a 500."""
    try:
        return await awaitable
    except CacheError as exc:
        raise _unavailable("", f"{type(exc).__name__}: {exc}") from None


def _unavailable(name: str, error: str) -> GatewayError:
    which = f"cache {name!r}" if name else "the cache"
    return GatewayError(
        503, f"{which} is unavailable: {error}", type="server_error", code="cache_unavailable"
    )


async def _json(ex: Exchange, payload: Any, status: int = 200) -> None:
    await ex.respond(status, JSON_HEADERS, json.dumps(payload).encode())


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _wants_html(ex: Exchange) -> bool:
    accept = header(ex.scope, b"accept") or b""
    return b"text/html" in accept


async def _lines(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The lines of a streamed body; one longer than `limit` bytes is a 413."""
    rest = b""
    async for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            yield line
        if len(rest) > limit:
            raise GatewayError(413, f"an import line is longer than {limit} bytes")
    if rest:
        yield rest


def _memory_json(cache: SemanticCache) -> dict[str, int]:
    """What this process holds for `cache` besides its store, and the bounds of each."""
    out: dict[str, int] = {}
    if isinstance(cache.embedder, LRUEmbedder):
        out["embedded_texts"] = cache.embedder.texts
        out["embedded_texts_max"] = cache.embedder.size
    if isinstance(cache.tokens, TokenMemory):
        out["token_texts"] = cache.tokens.texts
        out["token_texts_max"] = cache.tokens.size
        out["token_bytes"] = cache.tokens.nbytes
        out["token_bytes_max"] = cache.tokens.max_bytes
    return out
