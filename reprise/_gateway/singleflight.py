"""Single-flight for misses: one backend call for a burst of identical requests.

    miss ─► flight for this exact key under way here?
              yes ─► follow: wait for its answer (at most the forward timeout)
              no  ─► lead: register a flight, then (on Redis) take the key's lock
                       lock held by another replica ─► poll the exact tier for its answer
    leader's answer cacheable ─► followers served it as a hit (`X-Cache-Coalesced: true`)
    leader fails, is not cacheable, is cancelled, times out ─► each follower goes on alone

The exact key is the exact tier's key (the same partition and the same cached
text), so a follower is only ever served what a cache hit would have served it.
In one process the answer is handed over in memory as soon as the leader has
it, before it is stored, so it reaches followers even when the store fails.
Across replicas a follower cannot see another process's memory: it polls the
exact tier until the answer is stored, the lock is gone, or time is up. The
lock lives `LOCK_TTL` seconds and its leader renews it while it works, so a
replica that dies mid-flight holds up the others for seconds, not for the
whole forward timeout. A
follower never gets an error for someone else's failure: whatever goes wrong
with the leader or the lock, it just goes to the backend itself.

On Redis, taking the lock is a round trip between the lookup's verdict and the
backend call. While misses are the rule (`taking_early`), a lookup starts
taking it when its semantic tier starts (`early`), so that the round trip runs
during the embedding; `enter` then uses that attempt. A lookup that hits
instead lets it go (`done_early`), and the lock, if it was taken, is released.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from reprise._stores.redis_client import RedisClients, is_redis_url

logger = logging.getLogger("reprise.gateway")

_POLL_FIRST, _POLL_MAX = 0.01, 0.2  # seconds between polls of the exact tier, doubling
LOCK_TTL = 3.0  # seconds; renewed every third of it while the leader works
# Misses' share of the recent lookups that reached the semantic tier, as a moving
# average with this weight per lookup; the lock is taken early while it is at least
# `_EARLY_SHARE` (a hit then pays a SET and a release it did not need).
_EARLY_WEIGHT, _EARLY_SHARE = 0.05, 0.5


class FlightLock(Protocol):
    """A lock per exact key shared by replicas. Every method fails open, never raises."""

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take the key's lock for `ttl` seconds; False only if another holder has it."""
        ...

    async def refresh(self, key: str, token: str, ttl: float) -> bool:
        """Extend the lock `token` holds by `ttl` seconds; False if it no longer holds it."""
        ...

    async def held(self, key: str) -> bool:
        """Whether someone holds the key's lock (False when unsure)."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Drop the lock if `token` still holds it."""
        ...

    async def aclose(self) -> None: ...


class Flight:
    """One leader's request in flight; followers await its answer (None: go on alone)."""

    __slots__ = ("_answer", "_on_finish", "handed_over", "key", "token")

    def __init__(
        self, key: str, on_finish: Callable[[Flight], None], token: str | None = None
    ) -> None:
        self.key = key
        self.token = token or secrets.token_hex(8)
        self.handed_over = False  # the outbound store settles and finishes it
        self._answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._on_finish = on_finish

    def settle(self, answer: str | None) -> None:
        """Give followers the answer (the cached text of the response), or None."""
        if not self._answer.done():
            self._answer.set_result(answer)

    def finish(self) -> None:
        """The leader is done (stored or not): release followers and the lock."""
        self.settle(None)
        self._on_finish(self)

    async def wait(self, seconds: float) -> str | None:
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(self._answer)
        except TimeoutError:
            return None


class EarlyLock:
    """An attempt at a key's lock started before its lookup's verdict, shared by the
    lookups of that key under way (`users`) until one of them leads with it."""

    __slots__ = ("key", "task", "token", "users")

    def __init__(self, key: str, token: str, task: asyncio.Task[bool]) -> None:
        self.key, self.token, self.task = key, token, task
        self.users = 0


class SingleFlight:
    """The flights under way in one gateway, and the lock that spans replicas (if any)."""

    def __init__(self, lock: FlightLock | None = None) -> None:
        self.lock = lock
        self._flights: dict[str, Flight] = {}
        self._keepers: dict[Flight, asyncio.Task[None]] = {}
        self._releases: set[asyncio.Task[None]] = set()
        self._early: dict[str, EarlyLock] = {}
        self._miss_share = 1.0

    @property
    def taking_early(self) -> bool:
        """Whether lookups should start taking the lock before their verdict."""
        return self.lock is not None and self._miss_share >= _EARLY_SHARE

    def note(self, missed: bool) -> None:
        """A lookup that reached the semantic tier missed (True) or hit (False)."""
        self._miss_share += _EARLY_WEIGHT * (float(missed) - self._miss_share)

    def early(self, key: str) -> EarlyLock | None:
        """Start taking `key`'s lock for a lookup under way (None: no lock, or a flight
        for the key is already under way here). Pair it with `done_early`."""
        if self.lock is None or key in self._flights:
            return None
        attempt = self._early.get(key)
        if attempt is None:
            token = secrets.token_hex(8)
            task = asyncio.create_task(self.lock.acquire(key, token, LOCK_TTL))
            attempt = self._early[key] = EarlyLock(key, token, task)
        attempt.users += 1
        return attempt

    def done_early(self, attempt: EarlyLock) -> None:
        """The lookup that asked for `attempt` is done; the last one lets an unused
        attempt go (released if it took the lock)."""
        attempt.users -= 1
        if attempt.users <= 0 and self._early.get(attempt.key) is attempt:
            del self._early[attempt.key]
            self._spawn(self._let_go(attempt))

    async def _let_go(self, attempt: EarlyLock) -> None:
        try:
            taken = await attempt.task
        except Exception:  # a lock fails open and should never raise: a bug, so say so
            logger.exception("single-flight: taking the lock for %s failed", attempt.key[:12])
            return
        if taken and self.lock is not None:
            await self.lock.release(attempt.key, attempt.token)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    @property
    def under_way(self) -> int:
        return len(self._flights)

    async def enter(
        self, key: str, wait: float, exact: Callable[[], Awaitable[str | None]]
    ) -> str | Flight | None:
        """For a miss on `key`: the answer to serve (a follower), a `Flight` to lead
        (finish it when done), or None (go to the backend alone).

        `wait` bounds the wait for another's answer; `exact` reads the exact tier
        (None when the key is not there or the cache fails).
        """
        flight = self._flights.get(key)
        if flight is not None:
            return await flight.wait(wait)
        attempt = self._early.pop(key, None)  # this lookup's, or a concurrent one's
        token = attempt.token if attempt is not None else None
        flight = self._flights[key] = Flight(key, self._finished, token)
        if self.lock is None:
            return flight
        try:
            taking = (
                attempt.task
                if attempt is not None
                else self.lock.acquire(key, flight.token, LOCK_TTL)
            )
            if await taking:
                self._keepers[flight] = asyncio.create_task(self._keep(flight, self.lock))
                return flight
            # Another replica leads: wait for its answer in the exact tier.
            answer = await self._poll(key, wait, exact)
        except BaseException:
            # Cancelled or failed before the caller had the flight to finish: a flight
            # left registered would hold every later request for the key for `wait`.
            flight.finish()
            raise
        flight.settle(answer)
        flight.finish()
        return answer

    async def _poll(
        self, key: str, wait: float, exact: Callable[[], Awaitable[str | None]]
    ) -> str | None:
        assert self.lock is not None
        deadline = time.monotonic() + wait
        delay = _POLL_FIRST
        while True:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            answer = await exact()
            if answer is not None or time.monotonic() >= deadline:
                return answer
            if not await self.lock.held(key):
                return await exact()  # stored just before the lock went, or not at all
            delay = min(delay * 2, _POLL_MAX)

    @staticmethod
    async def _keep(flight: Flight, lock: FlightLock) -> None:
        """Renew the leader's lock until it finishes (or loses the lock)."""
        while True:
            await asyncio.sleep(LOCK_TTL / 3)
            if not await lock.refresh(flight.key, flight.token, LOCK_TTL):
                return

    def _finished(self, flight: Flight) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        keeper = self._keepers.pop(flight, None)
        if keeper is not None and self.lock is not None:
            keeper.cancel()
            self._spawn(self.lock.release(flight.key, flight.token))

    async def aclose(self) -> None:
        for keeper in self._keepers.values():
            keeper.cancel()
        for attempt in list(self._early.values()):
            attempt.users = 0
            self.done_early(attempt)
        if self._releases:
            await asyncio.wait(list(self._releases), timeout=1.0)
        if self.lock is not None:
            await self.lock.aclose()


def lock_for(cache_url: str, *, redis_clients: RedisClients | None = None) -> FlightLock | None:
    """A lock in Redis when the cache is, so that replicas coalesce too; else none.

    `redis_clients` lets it share the store's client.
    """
    if is_redis_url(cache_url):
        from reprise._stores.redis_flight import RedisFlightLock

        return RedisFlightLock(cache_url, clients=redis_clients)
    return None
