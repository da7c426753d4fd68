"""Rate-limit counters for `<rate-limit>` and `<rate-limit-by-key>`.

A `RateLimiter` counts calls per key in fixed windows of `period` seconds that
start at a key's first call, as APIM's renewal period does. The in-memory one
serves a single gateway process; the Redis one (same Protocol) lets replicas
share their counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from reprise._backends import import_from_string


class RateLimiter(Protocol):
    async def hit(self, key: str, calls: int, period: float) -> tuple[bool, float]:
        """Count one call for `key`; return (allowed, seconds until the window renews)."""
        ...


class MemoryRateLimiter:
    """Counters in a dict, swept of finished windows now and then."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (renews_at, count)
        self._next_sweep = 0.0

    async def hit(self, key: str, calls: int, period: float) -> tuple[bool, float]:
        now = self._clock()
        self._sweep(now)
        renews_at, count = self._windows.get(key, (0.0, 0))
        if now >= renews_at:
            renews_at, count = now + period, 0
        if count >= calls:
            return False, renews_at - now
        self._windows[key] = (renews_at, count + 1)
        return True, renews_at - now

    def _sweep(self, now: float) -> None:
        # Keys of finished windows would otherwise pile up with every new caller.
        if now < self._next_sweep:
            return
        self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
        self._next_sweep = now + 60.0


def limiter_for(cache_url: str) -> RateLimiter:
    """Counters in Redis when the cache is, so that replicas share their limits."""
    if cache_url.startswith(("redis://", "rediss://", "unix://")):
        redis_limiter = import_from_string("reprise._stores.redis_ratelimit:RedisRateLimiter")
        limiter: RateLimiter = redis_limiter(cache_url)  # counters under the store's prefix
        return limiter
    return MemoryRateLimiter()
