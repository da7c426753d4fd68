"""The gateway's caches: one `SemanticCache` per embeddings backend, opened in the background.

APIs whose lookups name the same embeddings backend share one cache (one
store connection, one model in memory); each lookup brings its own threshold.
A cache that cannot open at startup (the embeddings endpoint or Redis is
down, the model's ONNX export is missing) leaves the gateway serving
uncached, with `X-Cache-Status: FAILED`, and is retried until it opens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from reprise._cache import SemanticCache
from reprise._exceptions import CacheError, EmbedderError, IndexMismatch
from reprise._gateway.admission import AdmissionSettings, LookupGate
from reprise._gateway.config import Backend, GatewayConfig
from reprise._gateway.trace import log_event
from reprise._plugins import make_embedder, make_store
from reprise._protocols import Embedder
from reprise._stores.redis_client import RedisClients

_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0
_WARM_UP_TEXT = "warm up the embedding model"
_WARM_UP_MAX = 64  # texts in the warm-up batch: the local model's largest call


class CacheSlot:
    """A cache that may not be open yet. `cache` is None until it is."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], Awaitable[SemanticCache]],
        gate: LookupGate | None = None,
        *,
        warm_up_batch: int = 0,
    ) -> None:
        self.name = name
        self.factory = factory
        # Admits semantic lookups to this slot's model; None admits every one.
        self.gate = gate
        # Texts in the batch the model runs once at open (0: a single text only).
        self.warm_up_batch = warm_up_batch
        self.cache: SemanticCache | None = None
        self.error = "not opened yet"

    async def open_once(self) -> bool:
        """Try to build and open the cache; True once it is open."""
        if self.cache is not None:
            return True
        cache: SemanticCache | None = None
        try:
            cache = await self.factory()
            await cache.open()
            await self._warm_up(cache)
        except (CacheError, OSError) as exc:
            if cache is not None:
                await _close_quietly(cache, self.name)
            if isinstance(exc, IndexMismatch):
                # Retrying cannot fix an index built for other vectors, and serving
                # uncached forever would hide it: fail the start (see the README's
                # "Production: Redis" on migrating an index).
                raise
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.cache, self.error = cache, ""
        log_event("cache_open", logging.INFO, embeddings_backend=self.name)
        return True

    async def _warm_up(self, cache: SemanticCache) -> None:
        """The first model calls build ORT's buffers, for one text and again for a
        batch (a local model's first batch of 32 takes about twice as long as the
        next): pay them here, not in the lookup budgets of the first burst."""
        await cache.embedder.embed([_WARM_UP_TEXT])
        if self.warm_up_batch > 1:
            texts = [f"{_WARM_UP_TEXT}, text {i}" for i in range(self.warm_up_batch)]
            await cache.embedder.embed(texts)

    async def keep_opening(self, first: asyncio.Task[bool] | None = None) -> None:
        """Retry `open_once` with backoff until it succeeds (run as a task).

        `first` is an attempt already under way, awaited before trying again.
        """
        delay = _RETRY_FIRST
        if first is not None and await first:
            return
        while not await self.open_once():
            log_event(
                "cache_unavailable",
                embeddings_backend=self.name,
                action="serving uncached",
                retry_in_s=delay,
                error=self.error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def aclose(self) -> None:
        if self.cache is not None:
            cache, self.cache = self.cache, None
            await _close_quietly(cache, self.name)


async def _close_quietly(cache: SemanticCache, name: str) -> None:
    try:
        await cache.aclose()
    except (CacheError, OSError) as exc:
        log_event("cache_close_failed", embeddings_backend=name, error=str(exc))


def make_slots(
    config: GatewayConfig,
    redis_clients: RedisClients | None = None,
    clock: Callable[[], float] = time.time,
    *,
    serving: bool = True,
) -> dict[str, CacheSlot]:
    """One slot per embeddings backend that some lookup names.

    Their Redis stores borrow their client from `redis_clients`, whose owner closes
    it; `clock` is the Unix time their entries expire by. A `serving` slot runs
    a local model once on a batch as it opens (see `CacheSlot._warm_up`).
    """
    backends = config.embeddings_backends
    slots: dict[str, CacheSlot] = {}
    for backend in backends:
        url = _store_for(config.cache.url, backend, shared=len(backends) > 1)

        async def factory(backend: Backend = backend, url: str = url) -> SemanticCache:
            embedder = await _embedder_with_dims(backend)
            return SemanticCache(
                store=make_store(url, redis_clients=redis_clients, clock=clock, **bounds(config)),
                clock=clock,
                embedder=embedder,
                ttl=None,  # every store passes the policy's duration
                candidates=config.cache.candidates,
            )

        gate = LookupGate(_admission(config))
        # A remote endpoint has no buffers of ours to build, and a batch would be billed.
        warm_up = min(config.cache.max_lookups_in_flight, _WARM_UP_MAX)
        warm_up = warm_up if serving and backend.is_local else 0
        slots[backend.id] = CacheSlot(backend.id, factory, gate, warm_up_batch=warm_up)
    return slots


def _admission(config: GatewayConfig) -> AdmissionSettings:
    cache = config.cache
    return AdmissionSettings(
        in_flight=cache.max_lookups_in_flight,
        queued=cache.max_lookups_queued,
        budget_s=cache.lookup_budget_ms / 1e3,
    )


def bounds(config: GatewayConfig) -> dict[str, int]:
    """The config's size bounds, as the embedded store's keyword arguments."""
    found = {"max_entries": config.cache.max_entries, "max_bytes": config.cache.max_bytes}
    return {name: bound for name, bound in found.items() if bound is not None}


def _store_for(url: str, backend: Backend, *, shared: bool) -> str:
    # Two embedders' vectors cannot live in one embedded index (dimensions,
    # meaning); give each its own directory. Redis stores key by their own prefix.
    if not shared or url == ":memory:" or "://" in url:
        return url
    return str(Path(url) / backend.id)


async def _embedder_with_dims(backend: Backend) -> Embedder:
    """The backend's embedder, its dimensions known.

    A remote endpoint tells its dimensions only by answering; asking once here
    means nothing downstream (the cache, the verifier) meets an embedder that
    cannot say its `dims` yet, and an endpoint that is down fails right here.
    """
    embedder = embedder_for(backend)
    try:
        embedder.dims  # noqa: B018 - the property raises while unknown
    except EmbedderError:
        try:
            await embedder.embed([_WARM_UP_TEXT])
        except BaseException:
            await embedder.aclose()
            raise
    return embedder


def embedder_for(backend: Backend) -> Embedder:
    """The embedder of an embeddings backend: the local model or a remote endpoint."""
    if backend.is_local:
        return make_embedder("local", threads=backend.threads)
    # The config admits only http(s) URLs here, which make_embedder takes as remote.
    return make_embedder(
        backend.url, headers=dict(backend.headers), model=backend.model, timeout=backend.timeout
    )
