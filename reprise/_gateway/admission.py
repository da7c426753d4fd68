"""Admission of semantic lookups: a bounded queue, decided as the request arrives.

A semantic lookup costs a model call; an exact-tier lookup does not, so the
gate sits between the two (`SemanticCache.explain(gate=...)`) and exact hits
are served whatever the load. Up to `in_flight` semantic lookups run at once:
they reach the embedder together, which runs them as micro-batches, so
throughput rises with load. Those beyond wait in a FIFO of at most `queued`.

A lookup that could not finish within the lookup budget is refused at once
(`LookupShed`, a `CacheError`: the gateway sends the request to the backend as
FAILED, with the reason), instead of waiting out the budget, holding a place
in the model's batches, and then paying the backend anyway:

- the queue is full;
- the time lookups have been taking (`_Service`, which grows with the load),
  plus its wait in the queue, would pass the budget;
- it is still queued at its start deadline, the budget minus that time.

Refusing some lookups lets the rest finish in time: the model's batches shrink
and lookups get faster, so the estimate falls and admissions resume.

The decision is `shed_reason`, a pure function of the queue and the estimate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from reprise._exceptions import LookupShed

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """`in_flight` semantic lookups at once, `queued` more waiting; `budget_s` for all of it."""

    in_flight: int = 64
    queued: int = 256
    budget_s: float = 0.25


def shed_reason(
    ahead: int, settings: AdmissionSettings, service_s: float, running: int
) -> str | None:
    """Why a lookup arriving behind `ahead` queued ones must be refused now, or None.

    Lookups take `service_s` each (they ride together through the model, so it
    grows with how many run at once). With a slot free, the lookup starts at
    once and should finish in `service_s`; with every slot taken, the queue
    drains a wave of `in_flight` per `service_s`, so it starts after about
    `(ahead + 1) / in_flight` waves. A lookup alone is always admitted: it
    keeps the estimate fresh once the load has gone.
    """
    if running == 0 and ahead == 0:
        return None
    if ahead >= settings.queued:
        return f"lookup queue full ({ahead} waiting)"
    full = running >= settings.in_flight or ahead > 0
    wait = math.ceil((ahead + 1) / settings.in_flight) * service_s if full else 0.0
    if wait + service_s <= settings.budget_s:
        return None
    return (
        f"overloaded: {running} lookups running, {ahead} queued, lookups take "
        f"{service_s * 1e3:.0f} ms: expected done in {(wait + service_s) * 1e3:.0f} ms "
        f"> budget {settings.budget_s * 1e3:.0f} ms"
    )


class _Service:
    """A moving estimate of how long an admitted lookup takes (seconds)."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.seconds = 0.0  # optimistic until measured: nothing is shed before a first lookup

    def add(self, seconds: float) -> None:
        if self.seconds == 0.0:
            self.seconds = seconds
        else:
            self.seconds += self.weight * (seconds - self.seconds)


class LookupGate:
    """Admits semantic lookups (see the module docstring). One per model, shared by APIs."""

    def __init__(self, settings: AdmissionSettings, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.running = 0
        self.service = _Service()
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Run the body as one admitted lookup, or raise `LookupShed` without running it."""
        await self._enter()
        start = self.clock()
        try:
            yield
        finally:
            self.service.add(self.clock() - start)
            self.running -= 1
            self._wake()

    async def _enter(self) -> None:
        reason = shed_reason(self.waiting, self.settings, self.service.seconds, self.running)
        if reason is not None:
            raise LookupShed(reason)
        if self.running < self.settings.in_flight and not self._waiters:
            self.running += 1
            return
        deadline = max(0.0, self.settings.budget_s - self.service.seconds)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(deadline):
                await waiter  # _wake counts us in `running` before waking us
        except TimeoutError:
            if _admitted(waiter):  # woken in the same instant the deadline passed
                return
            raise LookupShed(
                f"overloaded: still queued after {deadline * 1e3:.0f} ms, "
                f"too late to finish within the budget"
            ) from None
        except asyncio.CancelledError:
            if _admitted(waiter):
                self.running -= 1  # admitted just as the caller gave up: pass the slot on
                self._wake()
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        while self._waiters and self.running < self.settings.in_flight:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.running += 1
                waiter.set_result(None)


def _admitted(waiter: asyncio.Future[None]) -> bool:
    return waiter.done() and not waiter.cancelled()
