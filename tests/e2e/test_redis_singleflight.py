"""Single-flight across replicas: two `reprise serve` processes on one Redis coalesce a burst.

The leader takes the exact key's lock in Redis; a request on the other replica
that finds it held polls the exact tier for the leader's answer, and that
replica's own identical requests wait on it in memory.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import openai
import pytest
import redis.asyncio as aioredis

from tests.e2e.test_redis_gateway import redis_config, with_options
from tests.gateway_fixtures import FakeUpstreamServer, GatewayServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"sf-{uuid.uuid4().hex[:12]}:"


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
async def clients(
    replicas: tuple[GatewayServer, GatewayServer],
) -> AsyncIterator[tuple[openai.AsyncOpenAI, openai.AsyncOpenAI]]:
    a, b = (
        openai.AsyncOpenAI(base_url=f"{g.url}/chat/v1", api_key="key-team-a", max_retries=0)
        for g in replicas
    )
    yield a, b
    await a.close()
    await b.close()


async def ask(client: openai.AsyncOpenAI, prompt: str) -> tuple[int, str, str, str]:
    """(HTTP status, X-Cache-Status, X-Cache-Coalesced, answer); a backend 500 is a status."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": prompt}]
        )
    except openai.InternalServerError as exc:
        return exc.status_code, exc.response.headers.get("x-cache-status", ""), "", ""
    content = raw.parse().choices[0].message.content or ""
    headers = raw.headers
    return 200, headers["x-cache-status"], headers.get("x-cache-coalesced", ""), content


async def test_a_burst_on_two_replicas_makes_one_backend_call(
    clients: tuple[openai.AsyncOpenAI, openai.AsyncOpenAI], fake_upstream: FakeUpstreamServer
) -> None:
    a, b = clients
    prompt = f"A popular question asked on both replicas {uuid.uuid4().hex[:8]} [sleep:2]"
    answers = await asyncio.gather(*(ask(c, prompt) for _ in range(20) for c in (a, b)))
    assert fake_upstream.calls(prompt) == 1
    assert {status for status, *_ in answers} == {200}
    assert len({content for *_, content in answers}) == 1
    assert sorted(cache for _, cache, _, _ in answers) == ["HIT"] * 39 + ["MISS"]
    assert sum(coalesced == "true" for _, _, coalesced, _ in answers) == 39


async def test_a_failing_leader_lets_the_other_replicas_followers_through(
    clients: tuple[openai.AsyncOpenAI, openai.AsyncOpenAI], fake_upstream: FakeUpstreamServer
) -> None:
    a, b = clients
    prompt = f"A question whose first call fails {uuid.uuid4().hex[:8]} [fail-first:500] [sleep:2]"
    answers = await asyncio.gather(*(ask(c, prompt) for _ in range(3) for c in (a, b)))
    assert sorted(status for status, *_ in answers) == [200] * 5 + [500]
    assert fake_upstream.calls(prompt) == 6
    assert not any(coalesced for _, _, coalesced, _ in answers)


async def test_no_lock_outlives_its_lookup_whether_it_missed_or_hit(
    clients: tuple[openai.AsyncOpenAI, openai.AsyncOpenAI], redis_url: str, prefix: str
) -> None:
    # Misses are the rule on a fresh gateway, so each lookup starts taking the lock
    # during its embedding: the miss leads with it, the hits let theirs go.
    a, b = clients
    prompt = f"How many legs does a spider have? {uuid.uuid4().hex[:8]}"
    assert (await ask(a, prompt))[1] == "MISS"
    reworded = prompt.replace("How many legs does", "How many legs has")
    assert [(await ask(c, reworded))[1] for c in (a, b)] == ["HIT", "HIT"]
    client = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(10):  # released after the responses, well before the TTL (3 s)
            if not await client.keys(f"reprise-flight:{prefix}*"):
                break
            await asyncio.sleep(0.1)
        assert await client.keys(f"reprise-flight:{prefix}*") == []
    finally:
        await client.aclose()
