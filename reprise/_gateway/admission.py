"""Admission of semantic lookups: a bounded queue, decided as the request arrives.

A semantic lookup costs a model call; an exact-tier lookup does not, so the
gate sits between the two (`SemanticCache.explain(gate=...)`) and exact hits
are served whatever the load. Lookups that run at once reach the embedder
together, which runs them as micro-batches, so throughput rises with load.

How many may run at once is what the model can finish within the lookup
budget: the gate measures the rate at which lookups complete (`_Rate`, lookups
per second, which grows with the batches) and lets `rate x budget x headroom`
run, never more than `in_flight`; beyond that, up to `queued` wait in FIFO
order. A lookup that could not finish within the budget is refused at once
(`LookupShed`, a `CacheError`: the gateway sends the request to the backend as
FAILED, with the reason), instead of waiting out the budget, holding a place in
the model's batches, and then paying the backend anyway:

- the queue is full;
- the lookups running and queued ahead of it, drained at the measured rate,
  would take it past the budget;
- it is still queued at its start deadline (the estimate was too hopeful).

A lookup alone is always admitted, so that the estimate follows the load down
as well as up. The decisions are pure functions of the queue and the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from reprise._exceptions import LookupShed

Clock = Callable[[], float]
#: The share of the budget the model's queue may take; the rest is the search,
#: the verifier and the event loop's own work on the lookup.
HEADROOM = 0.8


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """At most `in_flight` semantic lookups at once, `queued` more waiting; `budget_s` for all."""

    in_flight: int = 64
    queued: int = 256
    budget_s: float = 0.25


def running_limit(settings: AdmissionSettings, rate: float) -> int:
    """How many lookups may run at once: what the measured rate finishes within the budget."""
    if rate <= 0.0:  # not measured yet
        return settings.in_flight
    return max(1, min(settings.in_flight, int(rate * settings.budget_s * HEADROOM)))


def shed_reason(ahead: int, settings: AdmissionSettings, rate: float, running: int) -> str | None:
    """Why a lookup arriving behind `ahead` queued ones must be refused now, or None.

    `running` lookups are under way and complete at `rate` per second (0: not
    measured yet); the newcomer finishes after them and those queued ahead.
    """
    if running == 0 and ahead == 0:
        return None
    if ahead >= settings.queued:
        return f"lookup queue full ({ahead} waiting)"
    if rate <= 0.0:
        return None
    done_s = (running + ahead + 1) / rate
    if done_s <= settings.budget_s * HEADROOM:
        return None
    return (
        f"overloaded: {running} lookups running, {ahead} queued, {rate:.0f} done per second: "
        f"expected done in {done_s * 1e3:.0f} ms > budget {settings.budget_s * 1e3:.0f} ms"
    )


class _Rate:
    """Lookups completed per second: a moving estimate of `concurrency / duration`.

    A lookup that ran with `n` others under way (itself included) for `d`
    seconds shows a rate of `n / d`: batched through the model together, they
    all finished in about that time.
    """

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.per_s = 0.0  # not measured yet: nothing is refused before a first lookup

    def add(self, concurrency: int, seconds: float) -> None:
        sample = concurrency / max(seconds, 1e-4)
        if self.per_s == 0.0:
            self.per_s = sample
        else:
            self.per_s += self.weight * (sample - self.per_s)


class LookupGate:
    """Admits semantic lookups (see the module docstring). One per model, shared by APIs."""

    def __init__(self, settings: AdmissionSettings, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.running = 0
        self.rate = _Rate()
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def limit(self) -> int:
        return running_limit(self.settings, self.rate.per_s)

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Run the body as one admitted lookup, or raise `LookupShed` without running it."""
        await self._enter()
        start, concurrency = self.clock(), self.running
        try:
            yield
        except BaseException:
            # Cut short (the budget ran out) or failed: it says the model did not
            # keep up with `concurrency`, so it counts as one lookup in all that time.
            concurrency = 1
            raise
        finally:
            self.rate.add(concurrency, self.clock() - start)
            self.running -= 1
            self._wake()

    async def _enter(self) -> None:
        reason = shed_reason(self.waiting, self.settings, self.rate.per_s, self.running)
        if reason is not None:
            raise LookupShed(reason)
        if (self.running < self.limit or self.running == 0) and not self._waiters:
            self.running += 1
            return
        await self._wait()

    async def _wait(self) -> None:
        """Queue until `_wake` counts us in `running`, or refuse at the start deadline."""
        rate = self.rate.per_s
        own = 1.0 / rate if rate > 0.0 else 0.0
        deadline = max(0.0, self.settings.budget_s * HEADROOM - self.limit * own)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(deadline):
                await waiter
        except TimeoutError:
            if _admitted(waiter):  # woken in the same instant the deadline passed
                return
            raise LookupShed(
                f"overloaded: still queued after {deadline * 1e3:.0f} ms, "
                f"too late to finish within the budget"
            ) from None
        except asyncio.CancelledError:
            if _admitted(waiter):  # admitted just as the caller gave up: pass the slot on
                self.running -= 1
                self._wake()
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        while self._waiters and (self.running < self.limit or self.running == 0):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.running += 1
                waiter.set_result(None)


def _admitted(waiter: asyncio.Future[None]) -> bool:
    return waiter.done() and not waiter.cancelled()
