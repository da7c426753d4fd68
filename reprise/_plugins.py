"""Pick embedders, stores and rate limiters by name, importing each only when chosen.

The tables map a name to `module:attribute`, so that an optional dependency
(onnxruntime, usearch, redis-py, a remote embeddings client) is imported only by
those who use it. Every backend is chosen here, the library's and the gateway's.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reprise._exceptions import ConfigError
from reprise._protocols import Embedder, RateLimiter, VectorStore
from reprise._stores.redis_client import RedisClients, is_redis_url

EMBEDDERS: dict[str, str] = {
    "local": "reprise._embedders.local:LocalEmbedder",
    "remote": "reprise._embedders.remote:RemoteEmbedder",
}

STORES: dict[str, str] = {
    "embedded": "reprise._stores.embedded:EmbeddedStore",
    "redis": "reprise._stores.redis:RedisStore",
}

RATE_LIMITERS: dict[str, str] = {
    "memory": "reprise._stores.memory_ratelimit:MemoryRateLimiter",
    "redis": "reprise._stores.redis_ratelimit:RedisRateLimiter",
}


def import_from_string(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {path!r}: {exc}") from exc


def make_embedder(spec: str | Embedder, **options: Any) -> Embedder:
    """`"local"`, a model directory path, an embeddings URL, or an Embedder object.

    `options` go to the embedder's constructor: `headers=`, `model=`, `dims=`,
    `timeout=` for a URL (`RemoteEmbedder`); `threads=`, `cache_dir=` for the
    local model (`LocalEmbedder`).
    """
    if not isinstance(spec, str):
        return spec
    if spec.startswith(("http://", "https://")):
        cls = import_from_string(EMBEDDERS["remote"])
        return cls(spec, **options)  # type: ignore[no-any-return]
    cls = import_from_string(EMBEDDERS["local"])
    if spec == "local":
        return cls(**options)  # type: ignore[no-any-return]
    return cls(model_dir=Path(spec), **options)  # type: ignore[no-any-return]


def make_store(
    spec: str | Path | VectorStore,
    *,
    redis_clients: RedisClients | None = None,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> VectorStore:
    """A data directory path, `:memory:`, a `redis://` / `rediss://` URL, or a store object.

    `redis_clients` lends a Redis store its client, shared with whoever else uses it;
    `clock` is the Unix time a built store judges expiry by. `options` go to the
    store's constructor: `max_entries=`, `max_bytes=` for the embedded store.
    """
    if not isinstance(spec, (str, Path)):
        return spec
    text = str(spec)
    if is_redis_url(text):
        cls = import_from_string(STORES["redis"])
        return cls(text, clients=redis_clients, clock=clock, **options)  # type: ignore[no-any-return]
    if "://" in text:
        raise ConfigError(f"unknown store URL scheme in {text!r}; use a path or redis://")
    embedded = import_from_string(STORES["embedded"])
    return embedded(text, clock=clock, **options)  # type: ignore[no-any-return]


def make_rate_limiter(cache_url: str, *, redis_clients: RedisClients | None = None) -> RateLimiter:
    """Counters in Redis when the cache is, so that replicas share their limits.

    They live under the store's prefix and use its timeout (both from the URL);
    `redis_clients` lets them share the store's client.
    """
    if is_redis_url(cache_url):
        cls = import_from_string(RATE_LIMITERS["redis"])
        return cls(cache_url, clients=redis_clients)  # type: ignore[no-any-return]
    return import_from_string(RATE_LIMITERS["memory"])()  # type: ignore[no-any-return]
