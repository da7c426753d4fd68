"""Admission of semantic lookups: a bounded queue, decided as the request arrives.

A semantic lookup costs a model call; an exact-tier lookup does not, so the
gate sits between the two (`SemanticCache.explain(gate=...)`) and exact hits
are served whatever the load. Lookups that run at once reach the embedder
together, which runs them as micro-batches, so throughput rises with load.

How many may run at once is what the model can finish within the lookup
budget. The gate measures how fast lookups complete (`Measured`: lookups done
per second of busy time, and how many ran at once meanwhile) and expects `n`
lookups at once to run at that rate, scaled by how much more a batch of `n`
gets through than one of the concurrency measured (`batch_gain`: a model batch
runs at up to `BATCH_GAIN` times the single-call rate). It lets as many run as
finish within `budget x headroom`, never more than `in_flight`; beyond that, up
to `queued` wait in FIFO order, each until its start deadline (the budget less
one lookup's time). A lookup that could not finish within the budget is refused
at once (`LookupShed`, a `CacheError`: the gateway sends the request to the
backend as FAILED, with the reason), instead of waiting out the budget, holding
a place in the model's batches, and then paying the backend anyway:

- the queue is full;
- the lookups running and queued ahead of it, with it, would be done past the budget
  (within it, but past `budget x headroom`, it waits for a place);
- it is still queued at its start deadline (the estimate was too hopeful).

A lookup alone is always admitted, so that the estimate follows the load down
as well as up. Until the first turnover (as many lookups ended as ran at once)
there is no measurement, and lookups are admitted up to `in_flight`: a cold
gateway's first burst is not judged by the first of its batch to finish. The
decisions are pure functions of the queue and the measurement.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from reprise._exceptions import LookupShed

Clock = Callable[[], float]
#: The share of the budget the model's queue may take; the rest is the search,
#: the verifier and the event loop's own work on the lookup.
HEADROOM = 0.8
#: How many times the single-call rate the model gets through in a large batch: MiniLM
#: on 2 cores, 357 texts/s in batches of 32 against one call in 4.57 ms (219/s) in
#: benchmarks/results/speed-idle.md. A model whose batches gain more is underestimated.
BATCH_GAIN = 1.6


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """At most `in_flight` semantic lookups at once, `queued` more waiting; `budget_s` for all."""

    in_flight: int = 64
    queued: int = 256
    budget_s: float = 0.25


def batch_gain(n: float) -> float:
    """The model's rate with `n` lookups at once, in single-call rates: 1 for one,
    rising towards `BATCH_GAIN` (a call costs a fixed part plus a part per text)."""
    return n * BATCH_GAIN / (BATCH_GAIN - 1.0 + max(n, 1.0))


@dataclass(frozen=True, slots=True)
class Measured:
    """Lookups done per second of busy time (`rate`), with `concurrency` running on average."""

    rate: float
    concurrency: float

    def seconds(self, n: int) -> float:
        """How long `n` lookups at once take to be done."""
        if self.rate <= 0.0:
            return math.inf
        return n / (self.rate * batch_gain(n) / batch_gain(self.concurrency))

    @property
    def lookup_s(self) -> float:
        """How long one lookup took on average (Little's law: concurrency / rate)."""
        return self.concurrency / self.rate if self.rate > 0.0 else math.inf


def running_limit(settings: AdmissionSettings, measured: Measured | None) -> int:
    """How many lookups may run at once: as many as the measurement finishes in the budget."""
    if measured is None:  # not measured yet
        return settings.in_flight
    # measured.seconds(n) <= target, solved for n: n / (rate x gain(n) / gain(c)) is
    # (GAIN - 1 + n) / (rate x GAIN / gain(c)).
    reach = measured.rate * BATCH_GAIN / batch_gain(measured.concurrency)
    fits = settings.budget_s * HEADROOM * reach - BATCH_GAIN + 1.0
    return max(1, min(settings.in_flight, int(fits + 1e-9)))


def shed_reason(
    ahead: int, settings: AdmissionSettings, measured: Measured | None, running: int
) -> str | None:
    """Why a lookup arriving behind `ahead` queued ones must be refused now, or None.

    `running` lookups are under way; the newcomer finishes with them and those
    queued ahead, at the `measured` rate (None: not measured yet).
    """
    if running == 0 and ahead == 0:
        return None
    if ahead >= settings.queued:
        return f"lookup queue full ({ahead} waiting)"
    if measured is None:
        return None
    done_s = measured.seconds(running + ahead + 1)
    if done_s <= settings.budget_s:  # in time: it may wait for a place (`LookupGate._wait`)
        return None
    return (
        f"overloaded: {running} lookups running, {ahead} queued, {measured.rate:.0f} done per "
        f"second: expected done in {done_s * 1e3:.0f} ms > budget {settings.budget_s * 1e3:.0f} ms"
    )


class _Rate:
    """Lookups completed per second of busy time (while any lookup runs), over ~`window` s.

    Measured as the gate sees it, completions over the time lookups were under
    way, so that a batch of 32 finishing together counts 32, and idle time counts
    nothing. A lookup cut short or failed completes nothing: its time still
    counts, so a model that stops keeping up drags the rate down.

    There is no measurement until the first turnover: as many lookups ended,
    done or not, as ran at once on average meanwhile. Before it, completions
    say nothing of the rate: at a cold start under a burst, the first lookup of
    a batch is done while the rest of the batch is still running, and one
    completion in the batch's time reads as a rate many times too low.

    For the same reason the measurement is read as of the last lookup that
    ended: completions come in bursts, as a model batch ends, so the busy time
    since then, counted without the completions it is about to bring, would
    make the rate sag through every batch. A model that stalls still shows
    within one budget: the budget cuts its lookups short, and they end.
    """

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self.done = 0.0
        self.busy = 0.0
        self.load = 0.0  # lookups running x seconds
        self.ended = 0  # lookups ended, done or not, until the first turnover
        self.turned_over = False
        self._measured: Measured | None = None

    @property
    def measured(self) -> Measured | None:
        """The measurement as of the last lookup that ended; None until the first turnover."""
        return self._measured

    def _concurrency(self) -> float:
        return max(1.0, self.load / self.busy) if self.busy > 0.0 else 1.0

    def advance(self, seconds: float, running: int) -> None:
        """`seconds` passed with `running` lookups under way: older ones weigh less."""
        if seconds > 0.0 and running > 0:
            keep = math.exp(-seconds / self.window)
            self.done *= keep
            self.busy = self.busy * keep + seconds
            self.load = self.load * keep + running * seconds

    def ended_one(self, *, done: bool) -> None:
        self.done += 1.0 if done else 0.0
        if not self.turned_over:
            self.ended += 1
            self.turned_over = self.ended >= self._concurrency() - 1e-9
        if self.turned_over and self.busy > 0.0:
            self._measured = Measured(self.done / self.busy, self._concurrency())


class LookupGate:
    """Admits semantic lookups (see the module docstring). One per model, shared by APIs."""

    def __init__(self, settings: AdmissionSettings, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.running = 0
        self.rate = _Rate()
        self._since = clock()  # when `running` last changed
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def limit(self) -> int:
        return running_limit(self.settings, self.rate.measured)

    def admit(self) -> _Admitted:
        """Run the body as one admitted lookup, or raise `LookupShed` without running it."""
        return _Admitted(self)

    def _count(self, change: int) -> None:
        """Change `running`, first crediting the rate with the busy time since the last change."""
        now = self.clock()
        self.rate.advance(now - self._since, self.running)
        self._since = now
        self.running += change

    async def _enter(self) -> None:
        reason = shed_reason(self.waiting, self.settings, self.rate.measured, self.running)
        if reason is not None:
            raise LookupShed(reason)
        if (self.running < self.limit or self.running == 0) and not self._waiters:
            self._count(1)
            return
        await self._wait()

    async def _wait(self) -> None:
        """Queue until `_wake` counts us in `running`, or refuse at the start deadline."""
        measured = self.rate.measured
        own = 0.0 if measured is None else measured.lookup_s
        deadline = max(0.0, self.settings.budget_s * HEADROOM - own)
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
                self._count(-1)
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
                self._count(1)
                waiter.set_result(None)


class _Admitted:
    """`LookupGate.admit()`: a class, not a generator context manager, which cost a
    few percent of the event loop's time per semantic hit at c=32."""

    __slots__ = ("_gate",)

    def __init__(self, gate: LookupGate) -> None:
        self._gate = gate

    async def __aenter__(self) -> None:
        await self._gate._enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gate = self._gate
        try:
            # Cut short (the budget ran out) or failed: the model did not keep up.
            gate._count(-1)
            gate.rate.ended_one(done=exc_type is None)
        finally:
            gate._wake()


def _admitted(waiter: asyncio.Future[None]) -> bool:
    return waiter.done() and not waiter.cancelled()
