"""The issue's example config, served verbatim (only the upstream's port differs)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from reprise.testing import FakeUpstreamServer, GatewayServer
from tests.gateway_fixtures import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture
def example_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("UPSTREAM_API_KEY", "TEAM_A_KEY")}
    os.environ.update(UPSTREAM_API_KEY="sk-upstream-example", TEAM_A_KEY="key-for-team-a")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


async def test_the_example_config_serves_as_documented(
    example_env: None,
    fake_upstream: FakeUpstreamServer,
    start_gateway: Callable[[str], GatewayServer],
) -> None:
    text = (ROOT / "examples" / "gateway.yaml").read_text()
    gateway = start_gateway(text.replace("http://127.0.0.1:9000", fake_upstream.url))

    def client(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{gateway.url}/my-api/v1", api_key=key, max_retries=0)

    async def ask(key: str, prompt: str) -> str:
        async with client(key) as sdk:
            raw = await sdk.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": prompt}]
            )
        async with httpx.AsyncClient() as http:
            for _ in range(500):  # the store runs after the response
                if not (await http.get(f"{gateway.url}/healthz")).json()["pending_stores"]:
                    break
                await asyncio.sleep(0.02)
        return raw.headers["x-cache-status"]

    prompt = "What does the example config do?"
    assert await ask("key-for-team-a", prompt) == "MISS"
    seen = fake_upstream.last_headers()
    assert seen["authorization"] == "Bearer sk-upstream-example"  # the backend's own key
    assert "key-for-team-a" not in str(seen)
    assert await ask("key-for-team-a", prompt) == "HIT"
    assert await ask("key-for-team-b", prompt) == "MISS"  # vary-by subscription
    with pytest.raises(openai.AuthenticationError):
        await ask("key-for-team-c", prompt)
    # rate-limit calls="10" per subscription: team B has 9 misses left, then a 429.
    topics = ["volcanoes", "jazz", "tides", "bees", "chess", "glaciers", "origami", "comets", "tea"]
    for topic in topics:
        assert await ask("key-for-team-b", f"Tell me one fact about {topic}.") == "MISS"
    with pytest.raises(openai.RateLimitError):
        await ask("key-for-team-b", "One question too many about lakes")
    assert await ask("key-for-team-b", prompt) == "HIT"  # hits do not count
