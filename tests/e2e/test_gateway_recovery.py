"""An embeddings backend that is down at startup: the gateway serves uncached, then caches.

The gateway embeds through a remote embeddings endpoint (the local model served
by `reprise._embedders.serve`) that only starts after the gateway is up.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reprise.testing import FakeUpstreamServer, GatewayServer, Server, free_port

pytestmark = pytest.mark.e2e


def config(upstream: str, embeddings_port: int) -> str:
    return f"""
backends:
  chat: {{ url: "{upstream}/v1" }}
  embeddings: {{ url: "http://127.0.0.1:{embeddings_port}/v1/embeddings", timeout: 5 }}
cache: {{ url: ":memory:" }}
apis:
  - name: revive
    path: /revive
    backend: chat
    policies: |
      <policies>
        <inbound>
          <azure-openai-semantic-cache-lookup score-threshold="0.1"
              embeddings-backend-id="embeddings" />
        </inbound>
        <outbound>
          <azure-openai-semantic-cache-store duration="60" />
        </outbound>
      </policies>
"""


@pytest.fixture
def embeddings_later(tmp_path: Path) -> Iterator[Callable[[int], None]]:
    servers: list[Server] = []

    def start(port: int) -> None:
        command = [sys.executable, "-m", "reprise._embedders.serve", "--port", str(port)]
        server = Server("embeddings", command, port, tmp_path)
        servers.append(server)
        server.launch()  # not waited for: the gateway must notice it by itself

    yield start
    for server in servers:
        server.stop()


def test_caching_starts_once_the_embeddings_backend_answers(
    fake_upstream: FakeUpstreamServer,
    start_gateway: Callable[[str], GatewayServer],
    embeddings_later: Callable[[int], None],
) -> None:
    port = free_port()
    gateway = start_gateway(config(fake_upstream.url, port))
    url = f"{gateway.url}/revive/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
    body = {"messages": [{"role": "user", "content": "Are you caching yet?"}]}

    def ask() -> httpx.Response:
        return httpx.post(url, json=body, headers={"api-key": "k"}, timeout=30)

    down = ask()
    assert down.status_code == 200
    assert down.headers["x-cache-status"] == "FAILED"

    embeddings_later(port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        caches = httpx.get(f"{gateway.url}/healthz").json()["caches"]
        if caches["embeddings"] == "open":
            break
        time.sleep(0.25)
    assert caches["embeddings"] == "open"

    first = ask()
    time.sleep(0.3)  # the store lands after the response
    second = ask()
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert fake_upstream.calls("Are you caching yet?") == 2  # FAILED and MISS; not HIT
