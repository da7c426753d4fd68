"""Rate-limit counters in this process's memory (the `RateLimiter` of `_protocols`).

They serve a single gateway process, and stand in for the Redis counters
(`redis_ratelimit`, which let replicas share them) while Redis is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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
