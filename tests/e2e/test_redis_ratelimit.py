"""Rate-limit counters shared through a real Redis, and the in-memory fallback when it is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from reprise._stores.redis_ratelimit import RedisRateLimiter
from reprise.testing import free_port


@pytest.fixture
async def limiters(redis_url: str) -> AsyncIterator[Callable[[], RedisRateLimiter]]:
    """Limiters as separate replicas would have them: own clients, one prefix per test."""
    prefix = f"rl:{uuid.uuid4().hex}:"
    made: list[RedisRateLimiter] = []

    def make() -> RedisRateLimiter:
        made.append(RedisRateLimiter(redis_url, prefix=prefix, timeout=5.0))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()


async def test_replicas_share_one_count(limiters: Callable[[], RedisRateLimiter]) -> None:
    a, b = limiters(), limiters()

    results = [await a.hit("k", 3, 60), await b.hit("k", 3, 60), await a.hit("k", 3, 60)]
    refused, retry_after = await b.hit("k", 3, 60)

    assert [allowed for allowed, _ in results] == [True, True, True]
    assert refused is False
    assert 0 < retry_after <= 60
    assert (await b.hit("other", 3, 60))[0] is True


async def test_the_window_renews_after_its_period(
    limiters: Callable[[], RedisRateLimiter],
) -> None:
    limiter = limiters()
    assert (await limiter.hit("k", 1, 0.3))[0] is True
    assert (await limiter.hit("k", 1, 0.3))[0] is False

    await asyncio.sleep(0.4)

    assert (await limiter.hit("k", 1, 0.3))[0] is True


async def test_racing_replicas_never_over_admit(limiters: Callable[[], RedisRateLimiter]) -> None:
    replicas = [limiters() for _ in range(4)]

    results = await asyncio.gather(*(replicas[i % 4].hit("k", 10, 60) for i in range(60)))

    assert sum(allowed for allowed, _ in results) == 10


def test_the_cache_url_puts_counters_under_the_store_prefix() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0?prefix=tenant:&timeout=0.05")
    assert limiter.prefix == "tenant:ratelimit:"
    assert RedisRateLimiter("redis://127.0.0.1:1/0").prefix == "reprise:ratelimit:"


async def test_without_redis_it_limits_in_memory() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)

    results = [await limiter.hit("k", 2, 60) for _ in range(3)]

    assert [allowed for allowed, _ in results] == [True, True, False]
    await limiter.aclose()
