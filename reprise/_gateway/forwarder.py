"""Sending a client's request to its API's backend, and proxying what no cache handles.

`proxy.py` holds the rules (the upstream URL, which headers go where, the
pool); a `Forwarder` applies them to one `Exchange`: it drops the gateway's
own subscription keys, times the backend for the metrics, the log and the
trace, and streams the bodies of a plain proxied request both ways.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator

from reprise._gateway.asgi import (
    ClientGone,
    Exchange,
    Receive,
    Scope,
    bearer,
    body_chunks,
    declared_length,
    header,
)
from reprise._gateway.config import Api, GatewayConfig
from reprise._gateway.errors import GatewayError
from reprise._gateway.metrics import Metrics
from reprise._gateway.proxy import (
    Headers,
    Upstream,
    UpstreamResponse,
    new_client,
    response_headers,
    upstream_headers,
    upstream_url,
)


class Forwarder:
    """The gateway's side of its backends: one upstream pool, opened at startup."""

    def __init__(self, config: GatewayConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self._upstream: Upstream | None = None

    def open(self) -> None:
        self._upstream = Upstream(new_client())

    async def aclose(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()

    @property
    def upstream(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError("the gateway has not started: run it under an ASGI lifespan")
        return self._upstream

    async def passthrough(self, ex: Exchange, receive: Receive, api: Api, suffix: str) -> None:
        """Proxy the request unchanged, its body and the answer streamed as they come."""
        url = upstream_url(api.backend.url, suffix, ex.scope["query_string"])
        headers = self.headers(ex.scope, api, identity=False)
        content = self._client_body(ex.scope, receive, headers)
        try:
            response = await self.send(ex, api, url, headers, content)
        except GatewayError:
            if isinstance(content, ClientBody) and content.error is not None:
                # The HTTP client reports a body that failed as a broken connection;
                # the failure was the client's (a 413, a hang-up), so answer that.
                raise content.error from None
            raise
        try:
            await ex.start(
                response.status_code, response_headers(response.headers, keep_length=True)
            )
            if await relay(ex, response):
                await ex.body(b"", more=False)
        finally:
            await response.aclose()

    def _client_body(self, scope: Scope, receive: Receive, headers: Headers) -> bytes | ClientBody:
        """The client's body, streamed (its length added to `headers`); too long: a 413."""
        length = declared_length(scope, self.config.max_body_bytes)
        if length is None and header(scope, b"transfer-encoding") is None:
            return b""
        if length is not None:
            headers.append((b"content-length", length))
        return ClientBody(body_chunks(receive, self.config.max_body_bytes))

    async def send(
        self,
        ex: Exchange,
        api: Api,
        url: str,
        headers: Headers,
        content: bytes | AsyncIterable[bytes],
    ) -> UpstreamResponse:
        start = time.perf_counter()
        try:
            response = await self.upstream.send(
                ex.scope["method"], url, headers, content, seconds=api.backend.timeout
            )
        except GatewayError as exc:
            ex.trace.add("backend", error=exc.message)
            raise
        elapsed = time.perf_counter() - start
        self.metrics.observe(self.metrics.upstream_seconds, elapsed, api.name)
        ex.log["upstream_ms"] = round(elapsed * 1e3, 3)
        ex.trace.add("backend", status=response.status_code, ms=round(elapsed * 1e3, 3))
        return response

    def headers(self, scope: Scope, api: Api, *, identity: bool) -> Headers:
        client = scope["headers"]
        if self.config.subscriptions:
            # A subscription key is the gateway's, never the backend's: drop its header.
            client = [(k, v) for k, v in client if not self._is_subscription_key(k, v)]
        return upstream_headers(
            client, api.backend.headers, drop_credentials=False, identity=identity
        )

    def _is_subscription_key(self, name: bytes, value: bytes) -> bool:
        if name == b"ocp-apim-subscription-key":
            return True
        if name == b"api-key":
            return self.config.subscription_for_key(value.decode("latin-1")) is not None
        if name == b"authorization":
            token = bearer(value)
            return token is not None and self.config.subscription_for_key(token) is not None
        return False


class ClientBody:
    """A client's body streamed to the backend, remembering how it failed, if it did."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.error: GatewayError | ClientGone | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except (GatewayError, ClientGone) as exc:
            self.error = exc
            raise


async def relay(
    ex: Exchange, response: UpstreamResponse, *, copy: list[bytes] | None = None, sse: bool = False
) -> bool:
    """Pass the backend's body on as it arrives (appending it to `copy` if given).

    True when it arrived whole: the caller then ends the response. A backend
    that breaks off ends it here, with an SSE error event for an `sse` stream
    (the SDKs then raise instead of taking the stream as complete); False.
    """
    try:
        async for chunk in response.aiter_raw():
            if copy is not None:
                copy.append(chunk)
            await ex.body(chunk, more=True)
    except GatewayError as error:
        # The headers are gone: all that is left is to end the body early.
        ex.log["error"] = error.message
        await ex.body(b"data: " + error.body() + b"\n\n" if sse else b"", more=False)
        return False
    return True
