"""Redis URLs and clients: one redis-py client (one connection pool) per URL.

The gateway's store and its rate limiter name the same Redis (the cache's URL);
with a `RedisClients` of the gateway's own they share one client instead of each
opening a pool to the same server. A URL carries the store's own options in its
query (`?prefix=app1:&timeout=0.05`), which redis-py would reject: `split_url`
takes them out. redis-py itself is imported only when a client is made, so this
module costs nothing to those who never use Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from reprise._exceptions import ConfigError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

SCHEMES = ("redis://", "rediss://", "unix://")
DEFAULT_TIMEOUT = 0.1  # seconds: well inside the gateway's 250 ms lookup budget
_URL_OPTIONS = frozenset(
    {
        "prefix",
        "index_name",
        "timeout",
        "ef_runtime",
        "near_cache",
        "near_cache_mb",
        "token_vectors",
    }
)


def is_redis_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL without this store's own query options (redis-py rejects them), and those."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in query if k in _URL_OPTIONS}
    rest = urlencode([(k, v) for k, v in query if k not in _URL_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), options


def url_timeout(options: dict[str, str], default: float) -> float:
    """The `timeout` option of a URL's query, in seconds, else `default`."""
    try:
        return float(options.get("timeout", default))
    except ValueError as exc:
        raise ConfigError(f"invalid option in the Redis URL: {exc}") from exc


class RedisClients:
    """One client per (URL, timeout), made on first request and closed together.

    Whoever passes a `RedisClients` to a store or a rate limiter owns the clients
    and closes them; one made by the store itself is closed with it.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[str, float], aioredis.Redis] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, url: str, timeout: float) -> aioredis.Redis:
        """The client for `url` (without the store's options), made if new."""
        key = (url, timeout)
        if key not in self._clients:
            self._clients[key] = _connect(url, timeout)
        return self._clients[key]

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _connect(url: str, timeout: float) -> aioredis.Redis:
    # Every command and connection attempt is bounded by `timeout`; redis-py's own
    # retry is cut to one immediate reconnect, which is what a restarted server needs.
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return client
