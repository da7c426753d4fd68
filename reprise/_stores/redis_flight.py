"""The single-flight lock in Redis, so that gateway replicas coalesce identical misses.

One key per exact key, `reprise-flight:<prefix><key>`, set with `SET NX PX` to a random
token of the leader; renewing and releasing compare the token first (one Lua
script each), so a leader whose lock expired never extends or drops the next
leader's. The locks stay outside the entries' prefix: whatever lists entries by
scanning `<prefix>*` (an operator, a test) finds only hashes there.

Fail open: coalescing saves backend calls but is never worth a failed request.
A Redis error makes `acquire` answer "yours" (the request goes to the backend
as if there were no other replica) and `held` answer "no" (a waiting follower
goes to the backend); after an error the lock stays out of Redis's way for a
short back-off, as the rate limiter does.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reprise._stores.redis_client import DEFAULT_TIMEOUT, RedisClients, split_url, url_timeout
from reprise._stores.redis_direct import DirectCommands

logger = logging.getLogger("reprise.gateway")

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisFlightLock:
    """Locks under `reprise-flight:<prefix>` in the Redis at `url` (the cache's URL).

    `clients` shares redis-py clients with the store (see `RedisStore`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = 2.0,
        clients: RedisClients | None = None,
    ) -> None:
        url, options = split_url(url)
        self.prefix = "reprise-flight:" + options.get("prefix", "reprise:")
        self._own_clients = clients is None
        self._clients = RedisClients() if clients is None else clients
        timeout = url_timeout(options, timeout)
        self._client: aioredis.Redis = self._clients.get(url, timeout)
        # SET NX and EXISTS are single commands, on a miss's path: see `redis_direct`.
        self._direct = DirectCommands(self._client.connection_pool, timeout)
        self._refresh = self._client.register_script(_REFRESH)
        self._release = self._client.register_script(_RELEASE)
        self._retry_after = retry_after
        self._down_until = 0.0

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        if self._down():
            return True
        try:
            command = ("SET", self.prefix + key, token, "NX", "PX", _ms(ttl))
            taken = await self._direct.execute(*command)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return True
        return bool(taken)

    async def refresh(self, key: str, token: str, ttl: float) -> bool:
        if self._down():
            return False
        try:
            return bool(await self._refresh(keys=[self.prefix + key], args=[token, _ms(ttl)]))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False

    async def held(self, key: str) -> bool:
        if self._down():
            return False
        try:
            return bool(await self._direct.execute("EXISTS", self.prefix + key))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False

    async def release(self, key: str, token: str) -> None:
        if self._down():
            return  # the lock expires by itself
        try:
            await self._release(keys=[self.prefix + key], args=[token])
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def aclose(self) -> None:
        await self._direct.aclose()  # the lock's own, also with a shared client
        if self._own_clients:  # a shared client is closed by its owner
            await self._clients.aclose()

    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, exc: Exception) -> None:
        name = type(exc).__name__  # not its text: it can carry the URL's password
        logger.warning("single-flight lock off for %.0fs: %s", self._retry_after, name)
        self._down_until = time.monotonic() + self._retry_after


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
