"""One Redis client per URL: the gateway's store and rate limiter share one pool."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from reprise._plugins import make_rate_limiter, make_store
from reprise._protocols import Entry
from reprise._stores.memory_ratelimit import MemoryRateLimiter
from reprise._stores.redis import RedisStore
from reprise._stores.redis_client import RedisClients, split_url
from reprise._stores.redis_ratelimit import RedisRateLimiter
from reprise.testing import FakeUpstreamServer
from tests.gateway_fixtures import app_from_yaml, chat, post, running, settle

pytestmark = pytest.mark.e2e


def _url(redis_url: str) -> str:
    prefix = f"shared-{uuid.uuid4().hex[:8]}:"
    return f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={prefix}&timeout=2"


async def test_store_and_limiter_share_one_client_that_outlives_them(redis_url: str) -> None:
    url = _url(redis_url)
    clients = RedisClients()
    store = make_store(url, redis_clients=clients)
    limiter = make_rate_limiter(url, redis_clients=clients)
    assert isinstance(store, RedisStore)
    assert isinstance(limiter, RedisRateLimiter)
    assert len(clients) == 1
    assert clients.get(split_url(url)[0], 2.0) is store._client is limiter._client

    await store.open(3)
    vector = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    await store.upsert(Entry("e1", "p", "question", "answer", vector=vector))
    await store.aclose()  # borrowed: the limiter keeps using the client
    assert await limiter.hit("k", 1, 60) == (True, pytest.approx(60, abs=1))
    assert (await limiter.hit("k", 1, 60))[0] is False  # counted in Redis, not in memory
    await limiter.aclose()
    assert await clients.get(split_url(url)[0], 2.0).ping()

    await clients.aclose()
    assert len(clients) == 0


async def test_a_store_of_its_own_closes_its_own_client(redis_url: str) -> None:
    store = RedisStore(_url(redis_url))
    await store.open(3)
    await store.aclose()
    assert len(store._clients) == 0


def test_without_redis_the_limiter_counts_in_memory() -> None:
    assert isinstance(make_rate_limiter(":memory:"), MemoryRateLimiter)
    assert isinstance(make_rate_limiter("./reprise-data"), MemoryRateLimiter)


async def test_a_gateway_opens_one_redis_pool_for_its_cache_and_rate_limits(
    redis_url: str, fake_upstream: FakeUpstreamServer
) -> None:
    config = f"""
backends:
  chat: {{ url: "{fake_upstream.url}/v1" }}
  embed: {{ url: local }}
cache: {{ url: "{_url(redis_url)}", lookup-budget-ms: 5000 }}
apis:
  - name: chat
    path: /chat
    backend: chat
    policies: |
      <policies>
        <inbound>
          <llm-semantic-cache-lookup score-threshold="0.1" embeddings-backend-id="embed" />
          <rate-limit calls="100" renewal-period="60" />
        </inbound>
        <outbound><llm-semantic-cache-store duration="60" /></outbound>
      </policies>
"""
    app = app_from_yaml(config)
    async with running(app) as client:
        prompt = f"Which pool am I using? {uuid.uuid4().hex}"
        first = await post(client, chat(prompt))
        await settle()
        second = await post(client, chat(prompt))
        slot = app.slots["embed"]
        assert slot.cache is not None
        store = slot.cache.vector_store
        assert isinstance(store, RedisStore)
        assert isinstance(app.limiter, RedisRateLimiter)
        assert store._client is app.limiter._client
        assert len(app.redis_clients) == 1
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert len(app.redis_clients) == 0  # closed with the gateway
