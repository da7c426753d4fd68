"""Rate-limit counters in Redis, so that gateway replicas share one count per key.

Same Protocol and windows as `MemoryRateLimiter`: a fixed window of `period`
seconds starts at a key's first call, and refused calls are not counted. One
Lua script reads, counts and sets the window's expiry atomically, so replicas
racing on a key never over-admit and a window's key disappears with it.

If Redis cannot be reached, the limiter counts in memory instead (limits then
hold per replica rather than across them) and goes back to Redis after a short
back-off: a rate limiter must not fail requests the backend could serve.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reprise._protocols import RateLimiter
from reprise._stores.memory_ratelimit import MemoryRateLimiter
from reprise._stores.redis_client import DEFAULT_TIMEOUT, RedisClients, split_url, url_timeout

logger = logging.getLogger("reprise.gateway")

# KEYS[1] counter; ARGV[1] calls allowed; ARGV[2] window in ms.
# Returns {allowed (0/1), ms until the window renews}.
_HIT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {1, ttl}
"""


class RedisRateLimiter:
    """Counters under `prefix + key` in the Redis at `url`, with a local fallback.

    `url` may be the cache's URL, store options included: the counters then
    live under the store's prefix (`<prefix>ratelimit:`) and use its timeout.
    `clients` shares redis-py clients with the store (see `RedisStore`).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        fallback: RateLimiter | None = None,
        retry_after: float = 2.0,
        clients: RedisClients | None = None,
    ) -> None:
        url, options = split_url(url)
        self.prefix = prefix or options.get("prefix", "reprise:") + "ratelimit:"
        self._own_clients = clients is None
        self._clients = RedisClients() if clients is None else clients
        self._client: aioredis.Redis = self._clients.get(url, url_timeout(options, timeout))
        self._script = self._client.register_script(_HIT)
        self._fallback = fallback or MemoryRateLimiter()
        self._retry_after = retry_after
        self._down_until = 0.0

    async def hit(self, key: str, calls: int, period: float) -> tuple[bool, float]:
        if time.monotonic() < self._down_until:
            return await self._fallback.hit(key, calls, period)
        window_ms = max(1, round(period * 1000))
        try:
            allowed, ttl_ms = await self._script(keys=[self.prefix + key], args=[calls, window_ms])
        except (RedisError, OSError) as exc:
            logger.warning("rate-limit counters in memory for %.0fs: %s", self._retry_after, exc)
            self._down_until = time.monotonic() + self._retry_after
            return await self._fallback.hit(key, calls, period)
        return bool(allowed), max(0, int(ttl_ms)) / 1000

    async def aclose(self) -> None:
        if self._own_clients:  # a shared client is closed by its owner
            await self._clients.aclose()
