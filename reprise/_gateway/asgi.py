"""ASGI plumbing for the gateway: one request's response, its headers, its body.

Kept free of policy: reading a bounded body, parsing it as a JSON object,
finding credentials and directives in headers, and sending a response that
carries the cache headers and the trace.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from reprise._gateway.config import Api
from reprise._gateway.errors import JSON_HEADERS, GatewayError, too_large
from reprise._gateway.ledger import Noted
from reprise._gateway.proxy import Headers
from reprise._gateway.trace import Trace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before sending its whole request."""


class Exchange:
    """One request and its response: what was sent, what to log, the trace."""

    __slots__ = (
        "api",
        "cache_status",
        "coalesced",
        "entry",
        "log",
        "noted",
        "scope",
        "score",
        "send",
        "started",
        "status",
        "trace",
    )

    def __init__(self, scope: Scope, send: Send, trace: Trace) -> None:
        self.scope = scope
        self.send = send
        self.trace = trace
        self.api: Api | None = None
        self.cache_status: str | None = None  # None: not a cached API, no header
        self.score: float | None = None
        self.entry: str | None = None  # the entry served, named for feedback
        self.noted: Noted | None = None  # the lookup, as the admin ledger keeps it
        self.coalesced = False  # served the answer of an identical request in flight
        self.status = 0
        self.started = False
        self.log: dict[str, Any] = {}

    async def start(self, status: int, headers: Headers) -> None:
        extra: Headers = []
        if self.cache_status is not None:
            extra.append((b"x-cache-status", self.cache_status.encode()))
        if self.score is not None:
            extra.append((b"x-cache-score", f"{self.score:.4f}".encode()))
        if self.entry is not None:
            extra.append((b"x-cache-entry", self.entry.encode()))
        if self.coalesced:
            extra.append((b"x-cache-coalesced", b"true"))
        self.status, self.started = status, True
        message = {"type": "http.response.start", "status": status}
        message["headers"] = [*headers, *extra, *self.trace.header()]
        await self.send(message)

    async def body(self, data: bytes, *, more: bool) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        length = (b"content-length", str(len(body)).encode())
        await self.start(status, [*headers, length])
        await self.body(body, more=False)

    async def error(self, exc: GatewayError) -> None:
        self.log["error"] = exc.message
        await self.respond(exc.status, [*JSON_HEADERS, *exc.headers], exc.body())


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def bearer(value: bytes) -> str | None:
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def credentials(scope: Scope) -> list[tuple[bytes, str]]:
    """The keys a client presented, with the header each came in."""
    found: list[tuple[bytes, str]] = []
    for name, value in scope["headers"]:
        if name in (b"api-key", b"ocp-apim-subscription-key"):
            found.append((name, value.decode("latin-1").strip()))
        elif name == b"authorization":
            token = bearer(value)
            if token is not None:
                found.append((name, token))
    return found


def cache_control(scope: Scope) -> set[str]:
    value = header(scope, b"cache-control")
    if value is None:
        return set()
    return {d.strip().lower() for d in value.decode("latin-1").split(",")}


def declared_length(scope: Scope, limit: int) -> bytes | None:
    """The request's Content-Length header; a 413 if it declares more than `limit` bytes.

    The body's actual size is checked as it arrives (`body_chunks`), whatever it declares.
    """
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    return length


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    declared_length(scope, limit)
    # A body in one message (a client's JSON, nearly always) skips the chunk
    # generator: an async generator per request showed in the exact hit's profile.
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks = [chunk async for chunk in body_chunks(receive, limit, first=message)]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def body_chunks(
    receive: Receive, limit: int, *, first: Message | None = None
) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive (`first`: a message already received)."""
    size = 0
    while True:
        if first is not None:
            message, first = first, None
        else:
            message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def too_deep() -> GatewayError:
    return GatewayError(400, "the request body is nested too deeply", code="invalid_json")


def parse_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise GatewayError(
            400, "the request body is empty; send a JSON object", code="invalid_json"
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise GatewayError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    except RecursionError:
        raise too_deep() from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "the request body must be a JSON object", code="invalid_json")
    return payload
