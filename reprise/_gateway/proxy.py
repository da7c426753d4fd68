"""Forwarding to the backend: the upstream URL, the headers, one shared connection pool.

Credentials follow one rule: the backend's configured headers replace the
client's credential headers, and a subscription key is never sent upstream.
Without configured backend credentials and without subscriptions, the client's
own `Authorization` / `api-key` pass through (the gateway is then transparent).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from urllib.parse import urlsplit

import httpx

from reprise._gateway.errors import GatewayError, bad_gateway, gateway_timeout

Headers = list[tuple[bytes, bytes]]

#: Never forwarded in either direction: they describe one connection, not the message.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
#: Where clients put a key: a subscription key or a backend credential.
CREDENTIAL_HEADERS = frozenset({b"authorization", b"api-key", b"ocp-apim-subscription-key"})
#: Sent by the gateway itself, never passed on.
GATEWAY_HEADERS = frozenset({b"x-reprise-trace", b"cache-control"})

_CONNECT_TIMEOUT = 10.0


def new_client() -> httpx.AsyncClient:
    """The one upstream pool of a gateway; per-backend timeouts are set per request."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    return httpx.AsyncClient(limits=limits, timeout=None, follow_redirects=False)


def upstream_url(base: str, suffix: str, query: bytes = b"") -> str:
    """The backend URL for a request: `base` + the path below the API + the query.

    Segments the base ends with and the suffix starts with are written once,
    so that base `http://h/v1` and suffix `/v1/chat/completions` (an OpenAI SDK
    with `base_url=.../my-api/v1`) give `http://h/v1/chat/completions`, and
    base `https://r.openai.azure.com/openai` works with Azure's `/openai/...`.
    """
    base = base.rstrip("/")
    base_segments = [s for s in urlsplit(base).path.split("/") if s]
    suffix_segments = [s for s in suffix.split("/") if s]
    for k in range(min(len(base_segments), len(suffix_segments)), 0, -1):
        if base_segments[-k:] == suffix_segments[:k]:
            suffix_segments = suffix_segments[k:]
            break
    url = base + "".join("/" + s for s in suffix_segments)
    if suffix.endswith("/") and suffix_segments:
        url += "/"
    return f"{url}?{query.decode('latin-1')}" if query else url


def upstream_headers(
    client_headers: Iterable[tuple[bytes, bytes]],
    backend_headers: Mapping[str, str],
    *,
    drop_credentials: bool,
    identity: bool = False,
) -> Headers:
    """The headers to send upstream.

    `drop_credentials` removes every client credential header (the backend has
    its own, or the client's key is a subscription key). `identity` asks for an
    uncompressed body, for answers the gateway reads itself.
    """
    configured = {k.lower().encode("latin-1") for k in backend_headers}
    strip = HOP_BY_HOP | GATEWAY_HEADERS | configured | {b"ocp-apim-subscription-key"}
    if drop_credentials or configured & CREDENTIAL_HEADERS:
        strip |= CREDENTIAL_HEADERS
    if identity:
        strip |= {b"accept-encoding"}
    out = [(k, v) for k, v in client_headers if k not in strip]
    out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in backend_headers.items())
    if identity:
        out.append((b"accept-encoding", b"identity"))
    return out


def response_headers(headers: httpx.Headers, *, keep_length: bool) -> Headers:
    """The backend's response headers to pass to the client."""
    drop = HOP_BY_HOP if not keep_length else HOP_BY_HOP - {b"content-length"}
    return [(k, v) for k, v in headers.raw if k.lower() not in drop]


class Upstream:
    """Sends requests to backends over one pool, mapping transport failures to 502 / 504."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self,
        method: str,
        url: str,
        headers: Headers,
        content: bytes | AsyncIterable[bytes],
        *,
        seconds: float,
    ) -> httpx.Response:
        """Send; return the response with its body unread. `seconds` bounds each wait."""
        request = self.client.build_request(
            method,
            url,
            headers=headers,
            content=content,
            timeout=httpx.Timeout(seconds, connect=min(seconds, _CONNECT_TIMEOUT)),
        )
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise gateway_timeout(f"the backend did not answer in time ({_kind(exc)})") from exc
        except httpx.HTTPError as exc:
            raise bad_gateway(f"cannot reach the backend: {_kind(exc)}") from exc

    async def aclose(self) -> None:
        await self.client.aclose()


def stream_error(exc: httpx.HTTPError) -> GatewayError:
    """The error for a backend failure while reading its body."""
    if isinstance(exc, httpx.TimeoutException):
        return gateway_timeout(f"the backend stopped answering ({_kind(exc)})")
    return bad_gateway(f"the backend broke off its answer ({_kind(exc)})")


def _kind(exc: Exception) -> str:
    # The exception's class, not its text: texts can carry URLs with credentials.
    return type(exc).__name__
