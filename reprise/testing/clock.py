"""A clock tests advance, for what expires (cache entries, rate-limit windows)."""

from __future__ import annotations

import time


class ManualClock:
    """Unix time that moves only when `advance()` is called, from the real time at creation.

    Pass it as `clock=` to a cache, a store or the gateway, then advance it past a
    TTL instead of sleeping through one. With `frozen=False` it also keeps flowing
    with real time, for an app that other tests share meanwhile.
    """

    def __init__(self, *, frozen: bool = True) -> None:
        self._frozen = frozen
        self._start = time.time()
        self._offset = 0.0

    def __call__(self) -> float:
        base = self._start if self._frozen else time.time()
        return base + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds
