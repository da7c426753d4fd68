"""Fixtures that run the gateway and the fake upstream.

- `fake_upstream`: the fake OpenAI backend (`tests/fake_upstream.py`) as its own
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
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from reprise._gateway.app import Gateway, create_app
from reprise._gateway.config import parse_config
from reprise._gateway.outbound import STORE_TASK

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class FakeUpstreamServer:
    url: str  # base URL, e.g. http://127.0.0.1:PORT

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_control/stats").json()  # type: ignore[no-any-return]

    def calls(self, prompt: str) -> int:
        """How many times the backend was asked this (last user message)."""
        return int(self.stats()["calls"].get(prompt, 0))

    def last_headers(self) -> dict[str, str]:
        return self.stats()["last_headers"]  # type: ignore[no-any-return]


def start_fake_upstream(
    latency: float = 0.0, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the fake upstream; return the process and its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "tests.fake_upstream", "--port", str(port)]
    command += ["--latency", str(latency)]
    if log is None:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    else:
        with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/_control/stats", process)
    return process, url


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamServer]:
    log = tmp_path_factory.mktemp("fake-upstream") / "fake-upstream.log"
    process, url = start_fake_upstream(log=log)
    try:
        yield FakeUpstreamServer(url)
    finally:
        stop(process)


@dataclass
class GatewayServer:
    url: str
    log: Path

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


@pytest.fixture(scope="session")
def start_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], GatewayServer]]:
    """Start `reprise serve` with a YAML config text; servers stop with the session."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(config_yaml: str) -> GatewayServer:
        directory = tmp_path_factory.mktemp("gateway")
        config = directory / "gateway.yaml"
        config.write_text(config_yaml)
        log = directory / "gateway.log"
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "reprise", "serve", "--config", str(config)]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*command, "--port", str(port)], cwd=directory, stdout=out, stderr=out, env=env
            )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/healthz", process)
        return GatewayServer(url, log)

    try:
        yield start
    finally:
        for process in processes:
            stop(process)


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


def app_from_yaml(config_yaml: str) -> Gateway:
    return create_app(parse_config(config_yaml))


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


@pytest_asyncio.fixture(scope="session")
async def gateway_client(fake_upstream: FakeUpstreamServer) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process gateway without subscriptions, shared by the app tests."""
    async with running(app_from_yaml(app_config_yaml(fake_upstream.url))) as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def subscribed_client(
    fake_upstream: FakeUpstreamServer,
) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process gateway with subscriptions team-a and team-b."""
    config = app_config_yaml(fake_upstream.url, subscriptions=True)
    async with running(app_from_yaml(config)) as client:
        yield client
