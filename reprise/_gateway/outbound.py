"""The outbound store: writing a backend's answer to the cache after the response went out.

A store never delays the client: it runs in a background task named
`STORE_TASK`, and its failures reach only the metrics and the log. The
lookup's `LookupPlan` says what to store under (question, context, partition,
cache) and whether to store at all; the app hands over the answer once the
backend has sent it. `OutboundStores` keeps the tasks under way, so that
`/healthz` can count them and shutdown can wait for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from reprise._admin import savings
from reprise._exceptions import CacheError
from reprise._gateway import sse
from reprise._gateway.asgi import Exchange
from reprise._gateway.metrics import Metrics
from reprise._gateway.plan import LookupPlan
from reprise._gateway.policies import SemanticCacheStore
from reprise._gateway.singleflight import Flight
from reprise._gateway.trace import log_event
from reprise._request import Endpoint, is_cacheable_response

logger = logging.getLogger("reprise.gateway")

_DRAIN_WAIT = 10.0  # seconds shutdown waits for pending stores
STORE_TASK = "reprise-store"  # the name of the background tasks that store answers


class OutboundStores:
    """The stores of one gateway, each in a background task started after its response."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def under_way(self) -> int:
        """Stores still running after their responses went out."""
        return len(self._tasks)

    async def wait(self) -> None:
        """Wait until the stores under way have finished, at most `_DRAIN_WAIT` seconds."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=_DRAIN_WAIT)

    def schedule(
        self,
        ex: Exchange,
        store: SemanticCacheStore | None,
        plan: LookupPlan | None,
        endpoint: Endpoint,
        status: int,
        content: bytes,
        *,
        streamed: bool,
        flight: Flight | None = None,
    ) -> None:
        """Store the answer in the background; a `flight` led by this request is
        handed over, to be settled with the answer and finished by the store."""
        if store is None or plan is None or status not in store.cacheable_statuses:
            ex.trace.add("store", status="skipped", reason=f"status {status}" if store else "off")
            return
        if not plan.may_store:  # only for the followers of this request's flight
            ex.trace.add("store", status="skipped", reason="the cache is failing")
        elif not streamed:
            ex.trace.add("store", status="scheduled", ttl_s=store.duration)
        assert ex.api is not None
        name = ex.api.name
        # What a hit on this entry will save: the backend's part of this request.
        backend_ms = ex.trace.elapsed_ms() - float(ex.log.get("lookup_ms", 0.0))
        task = asyncio.create_task(
            self._store(name, store, plan, endpoint, status, content, streamed, backend_ms, flight),
            name=STORE_TASK,
        )
        if flight is not None:
            # Finished once the answer is written (a replica polling for it can then
            # find it), or if the task dies or is cancelled before it could be.
            flight.handed_over = True
            task.add_done_callback(lambda _: flight.finish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(
        self,
        api: str,
        store: SemanticCacheStore,
        plan: LookupPlan,
        endpoint: Endpoint,
        status: int,
        content: bytes,
        streamed: bool,
        backend_ms: float,
        flight: Flight | None,
    ) -> None:
        """The outbound store, run after the response: its failures only reach the log."""
        text, parsed = _answer(endpoint, content, streamed)
        cacheable = is_cacheable_response(
            status, parsed, endpoint, statuses=store.cacheable_statuses
        )
        answer = text if cacheable else None
        if flight is not None:
            flight.settle(answer)  # followers in this process need not wait for the store
        meta = {savings.KEY: savings.from_response(parsed, backend_ms).as_meta()}
        await self._write(api, store, plan, answer, meta)

    async def _write(
        self,
        api: str,
        store: SemanticCacheStore,
        plan: LookupPlan,
        answer: str | None,
        meta: dict[str, Any],
    ) -> None:
        cache = plan.slot.cache
        if answer is None or cache is None or not plan.may_store:
            self.metrics.count(self.metrics.stores, api, "skipped")
            return
        try:
            await cache.store(plan.prompt, answer, plan.partition, ttl=store.duration, meta=meta)
        except CacheError as exc:
            self.metrics.count(self.metrics.stores, api, "error")
            log_event("cache_store_failed", api=api, error=f"{type(exc).__name__}: {exc}")
            return
        except Exception:
            # Nobody awaits this task: a bug here must reach the log, not vanish.
            self.metrics.count(self.metrics.stores, api, "error")
            logger.exception("cache store crashed for API %r", api)
            return
        self.metrics.count(self.metrics.stores, api, "stored")


def _answer(endpoint: Endpoint, content: bytes, streamed: bool) -> tuple[str | None, Any]:
    """The answer as the text to cache (None: a stream that did not assemble) and parsed."""
    if streamed:
        assembled = sse.assemble(endpoint, content)
        text = None if assembled is None else json.dumps(assembled, ensure_ascii=False)
        return text, assembled
    text = content.decode("utf-8", errors="replace")
    try:
        return text, json.loads(text)
    except ValueError:
        return text, None
