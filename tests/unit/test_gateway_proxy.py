"""Upstream URLs and headers, the in-memory rate limiter, OpenAI error bodies: pure logic."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from yarl import URL

from reprise._gateway.errors import rate_limited
from reprise._gateway.proxy import (
    EnvProxies,
    Upstream,
    new_client,
    upstream_headers,
    upstream_url,
)
from reprise._stores.memory_ratelimit import MemoryRateLimiter


@pytest.mark.parametrize(
    ("base", "suffix", "query", "expected"),
    [
        ("http://h:9/v1", "/v1/chat/completions", b"", "http://h:9/v1/chat/completions"),
        ("http://h:9/v1/", "/chat/completions", b"", "http://h:9/v1/chat/completions"),
        (
            "https://r.openai.azure.com/openai",
            "/openai/deployments/d/chat/completions",
            b"api-version=2024-10-21",
            "https://r.openai.azure.com/openai/deployments/d/chat/completions"
            "?api-version=2024-10-21",
        ),
        (
            "https://r.openai.azure.com",
            "/openai/models",
            b"",
            "https://r.openai.azure.com/openai/models",
        ),
        ("http://h:9", "", b"", "http://h:9"),
    ],
)
def test_upstream_url(base: str, suffix: str, query: bytes, expected: str) -> None:
    assert upstream_url(base, suffix, query) == expected


CLIENT = [
    (b"host", b"gateway"),
    (b"authorization", b"Bearer client"),
    (b"api-key", b"client-key"),
    (b"ocp-apim-subscription-key", b"sub"),
    (b"x-reprise-trace", b"true"),
    (b"content-length", b"12"),
    (b"x-request-id", b"r1"),
]


def test_client_credentials_pass_when_the_backend_has_none() -> None:
    headers = dict(upstream_headers(CLIENT, {}, drop_credentials=False))
    assert headers[b"authorization"] == b"Bearer client"
    assert headers[b"api-key"] == b"client-key"
    assert headers[b"x-request-id"] == b"r1"
    for gone in (b"ocp-apim-subscription-key", b"host", b"content-length", b"x-reprise-trace"):
        assert gone not in headers


def test_backend_credentials_replace_every_client_credential() -> None:
    headers = upstream_headers(CLIENT, {"api-key": "backend"}, drop_credentials=False)
    names = [k for k, _ in headers]
    assert (b"api-key", b"backend") in headers
    assert b"authorization" not in names
    assert names.count(b"api-key") == 1


def test_identity_asks_for_an_uncompressed_body() -> None:
    client = [*CLIENT, (b"accept-encoding", b"gzip, br")]
    headers = upstream_headers(client, {}, drop_credentials=True, identity=True)
    assert (b"accept-encoding", b"identity") in headers
    assert (b"accept-encoding", b"gzip, br") not in headers
    assert b"authorization" not in dict(headers)


async def test_rate_limiter_fixed_window() -> None:
    now = [100.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    assert await limiter.hit("k", 2, 60) == (True, 60.0)
    now[0] = 110.0
    assert (await limiter.hit("k", 2, 60))[0]
    allowed, retry_after = await limiter.hit("k", 2, 60)
    assert not allowed
    assert retry_after == pytest.approx(50.0)
    assert (await limiter.hit("other", 2, 60))[0]
    now[0] = 160.0  # the window renews
    assert (await limiter.hit("k", 2, 60))[0]


def test_429_error_shape_and_retry_after() -> None:
    error = rate_limited(0.2, header="X-Wait")
    assert error.status == 429
    assert error.headers == [(b"x-wait", b"1")]
    body = json.loads(error.body())["error"]
    assert body["code"] == "rate_limit_exceeded"
    assert set(body) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("method", "suffix", "expected"),
    [
        ("POST", "/v1/chat/completions", "chat"),
        ("POST", "/openai/deployments/gpt/chat/completions", "chat"),
        ("POST", "/v1/completions", "completions"),
        ("POST", "/v1/responses", "responses"),
        ("POST", "/v1/responses/", "responses"),
        ("GET", "/v1/responses/resp_1", None),
        ("GET", "/v1/chat/completions", None),
        ("POST", "/v1/embeddings", None),
        ("POST", "/v1/responses/resp_1/cancel", None),
    ],
)
def test_which_requests_go_through_the_cache(method: str, suffix: str, expected: str) -> None:
    from reprise._gateway.app import _endpoint

    assert _endpoint(method, suffix) == expected


def test_backends_reach_the_environments_proxy_read_once_per_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    proxies = EnvProxies()
    proxy, _ = proxies(URL("https://example.openai.azure.com/openai/deployments"))
    assert proxy == URL("http://egress.internal:3128")
    assert proxies(URL("http://127.0.0.1:9000/v1")) == (None, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://other:3128")  # read once: not seen any more
    assert proxies(URL("https://example.openai.azure.com/other"))[0] == proxy


async def test_a_pooled_connection_the_backend_closed_is_retried_once_on_a_new_one() -> None:
    """The first connection answers once, then closes on the next request unanswered,
    as a backend does with a connection it timed out while our pool still held it."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first, answered = connections == 1, 0
        with contextlib.suppress(asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(2)  # the body
                if first and answered == 1:
                    break  # closed without an answer: the pooled connection went stale
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                answered += 1
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(new_client())
    try:
        for _ in range(2):
            # POST: aiohttp itself retries only idempotent methods.
            url = f"http://127.0.0.1:{port}/"
            response = await upstream.send("POST", url, [], b"{}", seconds=5)
            assert response.status_code == 200
            assert await response.aread() == b"ok"
            await response.aclose()
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()
    assert connections == 2  # the second request went out again, on a new connection
