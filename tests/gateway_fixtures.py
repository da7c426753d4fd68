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
from reprise.testing import FakeUpstreamServer, GatewayServer, ManualClock
from reprise.testing.configs import app_config_yaml

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
