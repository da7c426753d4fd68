"""Fixtures that run the gateway and the fake upstream.

- `fake_upstream`: the fake OpenAI backend (`reprise.testing.upstream`) as its own
  process on a free port, shared by the session.
- `start_gateway(config_yaml)`: `reprise serve` as a subprocess on a free port,
  stopped at the end of the session.
- `running(app)`: the ASGI app in-process, lifespan run by hand, with an httpx
  client over `httpx.ASGITransport`; `gateway_client` and `subscribed_client`
  are two such apps shared by the session (`app_config_yaml` has their APIs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from reprise._gateway.app import Gateway, create_app
from reprise._gateway.config import parse_config
from reprise._gateway.outbound import STORE_TASK
from reprise.testing import FakeUpstreamServer, GatewayServer, ManualClock, free_port

ROOT = Path(__file__).resolve().parent.parent


# --- request helpers shared by the app tests

KEY = {"Authorization": "Bearer client-key-1"}


def chat(prompt: str, **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], **params}


async def post(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    api: str = "chat",
    headers: dict[str, str] | None = None,
    endpoint: str = "/v1/chat/completions",
) -> httpx.Response:
    return await client.post(f"/{api}{endpoint}", json=body, headers={**KEY, **(headers or {})})


async def settle() -> None:
    """Let the background store of the previous response finish."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not [t for t in asyncio.all_tasks() if t.get_name() == STORE_TASK]:
            return


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamServer]:
    with FakeUpstreamServer(tmp_path_factory.mktemp("fake-upstream")) as server:
        yield server


@pytest.fixture(scope="session")
def start_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], GatewayServer]]:
    """Start `reprise serve` with a YAML config text; servers stop with the session."""
    servers: list[GatewayServer] = []

    def start(config_yaml: str) -> GatewayServer:
        directory = tmp_path_factory.mktemp("gateway")
        config = directory / "gateway.yaml"
        config.write_text(config_yaml)
        server = GatewayServer(config, directory, cwd=directory)
        servers.append(server)
        return server.start(timeout=90)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@contextlib.asynccontextmanager
async def running(app: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (lifespan by hand) and a client that calls it in-process."""
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4567))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await app.shutdown()


def app_from_yaml(config_yaml: str, clock: Callable[[], float] = time.time) -> Gateway:
    return create_app(parse_config(config_yaml), clock=clock)


def _lookup_policy(
    threshold: float = 0.15,
    embeddings: str = "local-embed",
    extra: str = 'ignore-system-messages="true" max-message-count="3"',
    vary_by: str = "",
    rate_limit: str = "",
    duration: int = 60,
) -> str:
    return f"""
      <policies>
        <inbound>
          <base />
          <llm-semantic-cache-lookup score-threshold="{threshold}"
              embeddings-backend-id="{embeddings}" {extra}>{vary_by}
          </llm-semantic-cache-lookup>
          {rate_limit}
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="{duration}" />
          <base />
        </outbound>
      </policies>"""


def _api(name: str, backend: str = "chat", **policy: Any) -> str:
    xml = _lookup_policy(**policy).replace("\n", "\n      ")
    return f"""
  - name: {name}
    path: /{name}
    backend: {backend}
    policies: |{xml}
"""


def app_config_yaml(upstream: str, *, subscriptions: bool = False, budget_ms: float = 5000) -> str:
    """The test gateway: one API per behaviour under test.

    The lookup budget is generous: on a loaded CI machine an embedding can take
    longer than the 250 ms default, and a FAILED lookup is not what most tests test.
    """
    dead = free_port()  # nothing listens there: a dead embeddings backend
    by_team = (
        '<rate-limit-by-key calls="1" renewal-period="60" '
        """counter-key='@(context.Request.Headers.GetValueOrDefault("x-team", "none"))' />"""
    )
    subs = (
        """
subscriptions:
  team-a: { key: "key-team-a" }
  team-b: { key: "key-team-b" }
"""
        if subscriptions
        else ""
    )
    apis = [
        _api("chat"),
        _api("keep-system", extra=""),
        _api("rl", rate_limit='<rate-limit calls="2" renewal-period="60" />'),
        _api("rlk", rate_limit=by_team),
        _api("ttl", duration=1),
        _api("ttl2", duration=2),
        _api("dead", embeddings="dead-embed"),
        _api("authed", backend="authed"),
        _api("sub", vary_by="<vary-by>@(context.Subscription.Id)</vary-by>"),
        _api("slow", backend="slow"),
        _api("down", backend="down"),
    ]
    return f"""
backends:
  chat: {{ url: "{upstream}/v1" }}
  authed: {{ url: "{upstream}/v1", headers: {{ Authorization: "Bearer upstream-secret" }} }}
  slow: {{ url: "{upstream}/v1", timeout: 0.3 }}
  down: {{ url: "http://127.0.0.1:{dead}/v1" }}
  local-embed: {{ url: local }}
  dead-embed: {{ url: "http://127.0.0.1:{dead}/v1/embeddings" }}
{subs}
cache: {{ url: ":memory:", lookup-budget-ms: {budget_ms} }}
max-body-bytes: 65536
apis:
  - name: plain
    path: /plain
    backend: chat
{"".join(apis)}
"""


@pytest.fixture(scope="session")
def gateway_clock() -> ManualClock:
    """The time of `gateway_client`'s entries: real time, which a test may push forward."""
    return ManualClock(frozen=False)


@pytest_asyncio.fixture(scope="session")
async def gateway_client(
    fake_upstream: FakeUpstreamServer, gateway_clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process gateway without subscriptions, shared by the app tests."""
    app = app_from_yaml(app_config_yaml(fake_upstream.url), clock=gateway_clock)
    async with running(app) as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def subscribed_client(
    fake_upstream: FakeUpstreamServer,
) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process gateway with subscriptions team-a and team-b."""
    config = app_config_yaml(fake_upstream.url, subscriptions=True)
    async with running(app_from_yaml(config)) as client:
        yield client
