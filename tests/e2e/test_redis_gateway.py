"""End to end with Redis: `reprise serve` replicas sharing one Valkey+RediSearch, and outages.

Two gateway processes share the session's Redis under a prefix of this
module's own. A third gateway has a Redis of its own that the outage test
starts late, kills mid-traffic and restarts empty. Clients are the official
openai SDK with retries off, so any failed request fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis

from reprise.testing import FakeUpstreamServer, GatewayServer, ValkeyServer
from tests.gateway_fixtures import app_config_yaml

pytestmark = pytest.mark.e2e

TEAM_A, TEAM_B = "key-team-a", "key-team-b"


def redis_config(upstream: str, url: str) -> str:
    # A generous budget and Redis timeout: CI machines are shared and slow, and
    # these tests are about sharing and recovery, not latency.
    config = app_config_yaml(upstream, subscriptions=True, budget_ms=3000)
    assert 'url: ":memory:"' in config
    return config.replace('url: ":memory:"', f'url: "{url}"')


def with_options(url: str, prefix: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}prefix={prefix}&timeout=1"


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"gw-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="module")
def replicas(
    redis_url: str,
    prefix: str,
    fake_upstream: FakeUpstreamServer,
    start_gateway: Callable[[str], GatewayServer],
) -> tuple[GatewayServer, GatewayServer]:
    config = redis_config(fake_upstream.url, with_options(redis_url, prefix))
    return start_gateway(config), start_gateway(config)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


Sdk = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
async def sdk() -> AsyncIterator[Sdk]:
    """`sdk(gateway, api="chat", key=TEAM_A)`: an openai client, closed after the test."""
    made: list[openai.AsyncOpenAI] = []

    def make(gateway: GatewayServer, api: str = "chat", key: str = TEAM_A) -> openai.AsyncOpenAI:
        made.append(
            openai.AsyncOpenAI(base_url=f"{gateway.url}/{api}/v1", api_key=key, max_retries=0)
        )
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def ask(client: openai.AsyncOpenAI, prompt: str) -> tuple[str, str]:
    """(X-Cache-Status, answer) for one user message."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}]
    )
    return raw.headers["x-cache-status"], raw.parse().choices[0].message.content or ""


async def entries_for(client: aioredis.Redis, prefix: str, prompt: str) -> dict[str, str]:
    """Key -> partition of the entries under `prefix` whose cached text holds `prompt`."""
    found = {}
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        fields = await client.hmget(key, ["prompt", "partition"])
        if fields[0] is not None and prompt in fields[0]:
            found[key] = fields[1]
    return found


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    """The first truthy result of `check()`, polled; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while not (result := await check()):
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.1)
    return result


async def test_a_miss_on_one_replica_is_a_hit_on_the_other(
    sdk: Sdk,
    replicas: tuple[GatewayServer, GatewayServer],
    redis_client: aioredis.Redis,
    prefix: str,
    fake_upstream: FakeUpstreamServer,
) -> None:
    a, b = replicas
    prompt = "How many moons does Jupiter have?"

    first = await ask(sdk(a), prompt)
    await eventually(lambda: entries_for(redis_client, prefix, prompt))
    other = await ask(sdk(b), prompt)
    paraphrase = await ask(sdk(b), "How many moons does the planet Jupiter have?")

    assert (first[0], other[0], paraphrase[0]) == ("MISS", "HIT", "HIT")
    assert first[1] == other[1] == paraphrase[1]
    assert fake_upstream.calls(prompt) == 1


async def test_entries_expire_through_redis_key_expiry(
    sdk: Sdk,
    replicas: tuple[GatewayServer, GatewayServer],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    a, b = replicas
    prompt = "Name a prime number between 20 and 30."  # API "ttl" stores for 1 s

    assert (await ask(sdk(a, "ttl"), prompt))[0] == "MISS"
    (key,) = await eventually(lambda: entries_for(redis_client, prefix, prompt))
    ttl_ms = await redis_client.pttl(key)
    hit = await ask(sdk(b, "ttl"), prompt)
    await eventually(lambda: _gone(redis_client, key), within=10)
    after = await ask(sdk(b, "ttl"), prompt)

    assert 0 < ttl_ms <= 1000
    assert (hit[0], after[0]) == ("HIT", "MISS")


async def _gone(client: aioredis.Redis, key: str) -> bool:
    return await client.exists(key) == 0


async def test_two_subscriptions_never_share_entries(
    sdk: Sdk,
    replicas: tuple[GatewayServer, GatewayServer],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    a, b = replicas
    prompt = "What is our team's budget for next quarter?"  # API "sub" varies by subscription

    team_a = await ask(sdk(a, "sub", TEAM_A), prompt)
    await eventually(lambda: entries_for(redis_client, prefix, prompt))
    team_b = await ask(sdk(b, "sub", TEAM_B), prompt)
    stored = await eventually(lambda: _at_least(redis_client, prefix, prompt, 2))
    team_b_again = await ask(sdk(a, "sub", TEAM_B), prompt)
    team_a_again = await ask(sdk(b, "sub", TEAM_A), prompt)

    assert (team_a[0], team_b[0]) == ("MISS", "MISS")
    assert (team_b_again[0], team_a_again[0]) == ("HIT", "HIT")
    assert (team_b_again[1], team_a_again[1]) == (team_b[1], team_a[1])
    assert team_a[1] != team_b[1]  # the backend's answers count its calls
    assert len(set(stored.values())) == 2  # one partition each


async def _at_least(client: aioredis.Redis, prefix: str, prompt: str, n: int) -> dict[str, str]:
    found = await entries_for(client, prefix, prompt)
    return found if len(found) >= n else {}


async def test_rate_limit_counters_are_shared_by_replicas(
    sdk: Sdk,
    replicas: tuple[GatewayServer, GatewayServer],
) -> None:
    a, b = replicas  # API "rl": 2 calls per 60 s; hits don't count, so every prompt is new
    tag = uuid.uuid4().hex[:8]

    await ask(sdk(a, "rl"), f"first question {tag}")
    await ask(sdk(b, "rl"), f"second question {tag}")
    with pytest.raises(openai.RateLimitError):
        await ask(sdk(a, "rl"), f"third question {tag}")


# --- outages: a gateway whose Redis starts late, dies mid-traffic and comes back empty


@pytest.fixture(scope="module")
def late_redis() -> Iterator[ValkeyServer]:
    server = ValkeyServer()  # not started: the gateway meets a dead Redis first
    yield server
    server.close()


async def test_redis_outages_never_fail_a_request_and_caching_resumes(
    sdk: Sdk,
    late_redis: ValkeyServer,
    fake_upstream: FakeUpstreamServer,
    start_gateway: Callable[[str], GatewayServer],
) -> None:
    gateway = start_gateway(redis_config(fake_upstream.url, with_options(late_redis.url, "out:")))
    client = sdk(gateway)

    # Down at startup: the gateway is up and serves uncached.
    assert (await ask(client, "Is the cache up yet?"))[0] == "FAILED"
    assert any("unavailable" in line for line in gateway.log_lines())

    late_redis.start()
    await _until_cached(client, "What is the boiling point of water?")

    # Killed under traffic, then back empty: every request succeeds throughout.
    statuses: list[str] = []
    traffic = asyncio.create_task(_traffic(client, statuses))
    await asyncio.sleep(1.0)
    late_redis.kill()
    await asyncio.sleep(2.0)
    late_redis.start()
    await _until_cached(client, "What is the freezing point of water?")
    await asyncio.sleep(0.5)
    if traffic.done():
        traffic.result()  # a request failed: raise its error
    traffic.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await traffic

    assert "FAILED" in statuses  # the outage was seen...
    assert statuses[-8:].count("HIT") >= 4  # ...and the repeated questions hit again after it


async def _until_cached(client: openai.AsyncOpenAI, prompt: str) -> None:
    async def hit() -> bool:
        return (await ask(client, prompt))[0] == "HIT"

    await eventually(hit, within=30)


async def _traffic(client: openai.AsyncOpenAI, statuses: list[str]) -> None:
    """Four clients asking a few repeating questions until cancelled; any error ends it."""

    async def worker(n: int) -> None:
        i = 0
        while True:
            statuses.append((await ask(client, f"Traffic question {n}-{i % 3}"))[0])
            i += 1

    await asyncio.gather(*(worker(n) for n in range(4)))
