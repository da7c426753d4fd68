"""Raw-socket requests against a real `reprise serve`: what an HTTP client library won't send.

Literal `..` segments, bad percent-encodings, conflicting lengths, broken
chunked encoding, truncated bodies, oversized headers, clients that hang up.
Each must be answered with a 4xx (or the connection closed) within a few
seconds, never a 5xx, and the gateway must serve normally afterwards.
Requests the HTTP parser (uvicorn) rejects before the app sees them get its
plain-text 400; every 4xx the app itself answers is OpenAI's error shape.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import httpx
import pytest

from tests.gateway_fixtures import FakeUpstreamServer, GatewayServer, app_config_yaml

pytestmark = pytest.mark.e2e

_BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"raw socket hello"}]}'
_KEY = b"Authorization: Bearer client-key-1\r\n"


def _request(line: bytes, headers: bytes = b"", body: bytes = _BODY, length: bool = True) -> bytes:
    head = line + b"\r\nHost: gateway\r\n" + _KEY + headers
    if length:
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"Connection: close\r\n\r\n" + body


CASES: dict[str, bytes] = {
    "literal dot-dot": _request(b"POST /chat/../plain/v1/chat/completions HTTP/1.1"),
    "dot-dot below the API": _request(b"POST /plain/v1/../../admin HTTP/1.1"),
    "encoded dot-dot": _request(b"POST /plain/v1/%2e%2e/%2E%2E/admin HTTP/1.1"),
    "bad percent-encoding": _request(b"POST /chat/v1/chat/%zz/completions HTTP/1.1"),
    "raw non-UTF-8 path": _request(b"POST /chat/v1/\xff\xfe/completions HTTP/1.1"),
    "NUL in the path": _request(b"POST /chat/v1/%00/chat/completions HTTP/1.1"),
    "absolute-form target": _request(b"POST http://evil.example/chat/v1/chat/completions HTTP/1.1"),
    "length and chunked": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1",
        b"Transfer-Encoding: chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
    ),
    "two different lengths": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1", b"Content-Length: 3\r\n"
    ),
    "bad chunk size": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1",
        b"Transfer-Encoding: chunked\r\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
        length=False,
    ),
    "chunked JSON": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1",
        b"Transfer-Encoding: chunked\r\n",
        b"".join(
            f"{len(part):x}\r\n".encode() + part + b"\r\n"
            for part in (_BODY[:10], _BODY[10:40], _BODY[40:])
        )
        + b"0\r\n\r\n",
        length=False,
    ),
    "huge header": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1", b"X-Big: " + b"a" * 200_000 + b"\r\n"
    ),
    "obsolete line folding": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1", b"X-Fold: a\r\n  b\r\n"
    ),
    "control bytes in a header": _request(
        b"POST /chat/v1/chat/completions HTTP/1.1", b"Cache-Control: \x01\x02no-store\r\n"
    ),
    "HTTP/1.0 without Host": b"GET /healthz HTTP/1.0\r\n\r\n",
    "unknown method": _request(b"BREW /chat/v1/chat/completions HTTP/1.1"),
    "HEAD on a cached path": _request(b"HEAD /chat/v1/chat/completions HTTP/1.1", body=b""),
    "OPTIONS star": _request(b"OPTIONS * HTTP/1.1", body=b""),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
}


def exchange(url: str, payload: bytes, *, shut: bool = True, timeout: float = 10.0) -> bytes:
    """Send raw bytes; return everything the server sent until it closed (or the timeout)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def status_of(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/"):
        return None
    return int(reply.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstreamServer, start_gateway: Callable[[str], GatewayServer]
) -> GatewayServer:
    return start_gateway(app_config_yaml(fake_upstream.url))


@pytest.mark.parametrize("name", sorted(CASES))
def test_raw_requests_get_a_4xx_or_a_clean_answer(gateway: GatewayServer, name: str) -> None:
    reply = exchange(gateway.url, CASES[name])
    status = status_of(reply)
    assert status is None or status < 500 or b"x-fake-upstream: true" in reply.lower(), reply[:400]
    head, _, body = reply.partition(b"\r\n\r\n")
    ours = b"x-fake-upstream" not in head.lower() and not name.startswith("HEAD")
    if status is not None and 400 <= status < 500 and b"application/json" in head.lower() and ours:
        error = json.loads(body)["error"]
        assert error["message"]
        assert {"type", "param", "code"} <= error.keys()
    assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200


def test_clients_that_hang_up_early_leave_the_gateway_serving(gateway: GatewayServer) -> None:
    truncated = _request(b"POST /chat/v1/chat/completions HTTP/1.1")[:-20]  # body cut short
    partial_head = b"POST /chat/v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-"
    for payload in (truncated, partial_head, b""):
        for _ in range(20):
            exchange(gateway.url, payload, timeout=5)
    answer = httpx.post(
        f"{gateway.url}/chat/v1/chat/completions",
        content=_BODY,
        headers={"Authorization": "Bearer client-key-1", "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200
