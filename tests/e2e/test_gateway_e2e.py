"""End to end: `reprise serve` as a process, the fake upstream as a process, the openai SDK.

One gateway serves the whole module (subscriptions team-a and team-b); each
test uses its own prompts so that tests do not see each other's entries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from reprise.testing import FakeUpstreamServer, GatewayServer
from tests.gateway_fixtures import app_config_yaml

pytestmark = pytest.mark.e2e

TEAM_A, TEAM_B = "key-team-a", "key-team-b"
API_VERSION = "2024-10-21"


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstreamServer, start_gateway: Callable[[str], GatewayServer]
) -> GatewayServer:
    return start_gateway(app_config_yaml(fake_upstream.url, subscriptions=True))


class Clients:
    """SDK clients for the gateway, closed after each test."""

    def __init__(self, gateway: GatewayServer) -> None:
        self.gateway = gateway
        self.made: list[openai.AsyncOpenAI] = []

    def openai(self, api: str = "sub", key: str = TEAM_A) -> openai.AsyncOpenAI:
        url = f"{self.gateway.url}/{api}/v1"
        self.made.append(openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0))
        return self.made[-1]

    def azure(self, api: str = "sub", key: str = TEAM_A) -> openai.AsyncAzureOpenAI:
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=f"{self.gateway.url}/{api}",
            api_version=API_VERSION,
            api_key=key,
            max_retries=0,
        )
        self.made.append(client)
        return client


@pytest_asyncio.fixture
async def sdk(gateway: GatewayServer) -> AsyncIterator[Clients]:
    clients = Clients(gateway)
    yield clients
    for client in clients.made:
        await client.close()


def user(prompt: str) -> list[Any]:
    return [{"role": "user", "content": prompt}]


async def settled(client: openai.AsyncOpenAI) -> None:
    """Wait until the gateway has no store in flight (they run after the response)."""
    gateway = str(client.base_url).split("/", 3)[:3]
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            health = (await http.get("/".join(gateway) + "/healthz")).json()
            if health["pending_stores"] == 0:
                return
            await asyncio.sleep(0.02)


async def ask(client: openai.AsyncOpenAI, prompt: str, **params: Any) -> tuple[str, str]:
    """Ask; return (X-Cache-Status, answer text) once the answer's store has landed."""
    raw = await client.chat.completions.with_raw_response.create(
        model=params.pop("model", "gpt-4o"), messages=params.pop("messages", user(prompt)), **params
    )
    completion = raw.parse()
    await settled(client)
    return raw.headers["x-cache-status"], completion.choices[0].message.content or ""


async def test_openai_sdk_exact_and_paraphrase_hits(
    sdk: Clients, gateway: GatewayServer, fake_upstream: FakeUpstreamServer
) -> None:
    client = sdk.openai()
    first = await ask(client, "How far is the Moon from the Earth?")
    exact = await ask(client, "How far is the Moon from the Earth?")
    paraphrase = await ask(client, "What is the distance between the Earth and the Moon?")
    assert [first[0], exact[0], paraphrase[0]] == ["MISS", "HIT", "HIT"]
    assert first[1] == exact[1] == paraphrase[1]
    assert fake_upstream.calls("How far is the Moon from the Earth?") == 1


async def test_azure_sdk_streaming_miss_then_hits(sdk: Clients, gateway: GatewayServer) -> None:
    client = sdk.azure()
    prompt = "Explain photosynthesis in one sentence."
    stream = await client.chat.completions.create(
        model="my-deployment",
        messages=user(prompt),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    await settled(client)

    raw = await client.chat.completions.with_raw_response.create(
        model="my-deployment", messages=user(prompt)
    )
    assert raw.headers["x-cache-status"] == "HIT"
    completion = raw.parse()
    assert completion.choices[0].message.content == text
    assert completion.model == "my-deployment"

    replay = await client.chat.completions.create(
        model="my-deployment", messages=user(prompt), stream=True
    )
    replayed = [chunk async for chunk in replay]
    assert "".join(c.choices[0].delta.content or "" for c in replayed) == text
    assert replayed[-1].choices[0].finish_reason == "stop"
    # Another deployment is another model: no answer is shared across them.
    other = await client.chat.completions.with_raw_response.create(
        model="other-deployment", messages=user(prompt)
    )
    assert other.headers["x-cache-status"] == "MISS"


async def test_subscriptions_are_isolated(sdk: Clients, gateway: GatewayServer) -> None:
    prompt = "What is our team's quarterly goal?"
    a = await ask(sdk.openai(key=TEAM_A), prompt)
    b = await ask(sdk.openai(key=TEAM_B), prompt)
    b_again = await ask(sdk.azure(key=TEAM_B), prompt)  # api-key header this time
    assert (a[0], b[0], b_again[0]) == ("MISS", "MISS", "HIT")
    with pytest.raises(openai.AuthenticationError):
        await ask(sdk.openai(key="not-a-subscription"), prompt)


async def test_system_messages_and_message_count(sdk: Clients, gateway: GatewayServer) -> None:
    client = sdk.openai(api="chat")

    def with_system(system: str) -> list[Any]:
        return [{"role": "system", "content": system}, *user("Define entropy briefly.")]

    assert (await ask(client, "", messages=with_system("Be formal.")))[0] == "MISS"
    assert (await ask(client, "", messages=with_system("Be casual.")))[0] == "HIT"
    long_dialog = [
        {"role": role, "content": f"turn {i} about knitting"}
        for i, role in enumerate(["user", "assistant", "user", "assistant", "user"])
    ]
    assert (await ask(client, "", messages=long_dialog))[0] == "BYPASS"
    assert (await ask(client, "", messages=long_dialog))[0] == "BYPASS"


async def test_temperature_change_misses(sdk: Clients, gateway: GatewayServer) -> None:
    client = sdk.openai()
    prompt = "Suggest a name for a grey cat."
    assert (await ask(client, prompt, temperature=0.0))[0] == "MISS"
    assert (await ask(client, prompt, temperature=0.0))[0] == "HIT"
    assert (await ask(client, prompt, temperature=1.0))[0] == "MISS"


async def test_rate_limit_429_counts_misses_only(sdk: Clients, gateway: GatewayServer) -> None:
    client = sdk.openai(api="rl", key=TEAM_B)
    assert (await ask(client, "Rate limit e2e: first question"))[0] == "MISS"
    for _ in range(3):
        assert (await ask(client, "Rate limit e2e: first question"))[0] == "HIT"
    assert (await ask(client, "Rate limit e2e: a second, different question"))[0] == "MISS"
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(client, "Rate limit e2e: a third question about tigers")
    assert int(refused.value.response.headers["retry-after"]) >= 1
    # Team A has its own counter.
    assert (await ask(sdk.openai(api="rl"), "Rate limit e2e: team A asks"))[0] == "MISS"


async def test_ttl_expiry(sdk: Clients, gateway: GatewayServer) -> None:
    client = sdk.openai(api="ttl2")
    prompt = "How many legs does a spider have?"
    assert (await ask(client, prompt))[0] == "MISS"
    assert (await ask(client, prompt))[0] == "HIT"
    await asyncio.sleep(2.2)  # duration="2"
    assert (await ask(client, prompt))[0] == "MISS"


async def test_dead_embeddings_backend_fails_open(sdk: Clients, gateway: GatewayServer) -> None:
    status, answer = await ask(sdk.openai(api="dead"), "Is the cache down?")
    assert status == "FAILED"
    assert "Is the cache down?" in answer


async def test_upstream_500_is_not_cached(
    sdk: Clients, gateway: GatewayServer, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "Please fail [status:500]"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await ask(sdk.openai(), prompt)
    assert fake_upstream.calls(prompt) == 2


async def test_cut_stream_is_not_cached(
    sdk: Clients, gateway: GatewayServer, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "Stream and break [cut]"
    for _ in range(2):
        stream = await sdk.openai().chat.completions.create(
            model="gpt-4o", messages=user(prompt), stream=True
        )
        with pytest.raises(openai.APIError):
            _ = [chunk async for chunk in stream]
        await settled(sdk.openai())
    assert fake_upstream.calls(prompt) == 2


async def test_bad_input_is_a_4xx(sdk: Clients, gateway: GatewayServer) -> None:
    with pytest.raises(openai.BadRequestError):
        await sdk.openai().chat.completions.create(model="gpt-4o", messages=[])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        headers = {"api-key": TEAM_A}
        broken = await client.post("/sub/v1/chat/completions", content=b"{", headers=headers)
        missing = await client.post("/nope/v1/chat/completions", json={}, headers=headers)
    assert broken.status_code == 400
    assert "error" in broken.json()
    assert missing.status_code == 404


async def test_responses_api_streaming_hit(sdk: Clients, gateway: GatewayServer) -> None:
    client = sdk.openai()
    first = await client.responses.create(model="gpt-4o", input="Name a prime number above 100.")
    await settled(client)
    stream = await client.responses.create(
        model="gpt-4o", input="Name a prime number above 100.", stream=True
    )
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == first.output_text


def test_log_lines_are_json_without_secrets(gateway: GatewayServer) -> None:
    requests = [line for line in gateway.log_lines() if '"event":"request"' in line]
    assert requests
    assert all(json.loads(line)["status"] for line in requests)
    assert not [line for line in gateway.log_lines() if TEAM_A in line or TEAM_B in line]


async def test_a_streamed_miss_reaches_the_client_before_the_backend_finishes(
    gateway: GatewayServer, fake_upstream: FakeUpstreamServer
) -> None:
    # The backend sends two chunks, then holds the rest until released. A gateway
    # that buffered the stream would never deliver the first chunk: wait_for fails.
    body = {"model": "gpt-4o", "stream": True, "messages": user("Tell a long story [hold]")}
    url = f"{gateway.url}/sub/v1/chat/completions"
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", url, json=body, headers={"api-key": TEAM_A}) as response,
    ):
        lines = response.aiter_lines()
        first = await asyncio.wait_for(anext(lines), timeout=20)
        assert first.startswith("data: ")
        await client.post(f"{fake_upstream.url}/_control/release")
        rest = [line async for line in lines]
    assert "data: [DONE]" in rest
