"""The load driver of `reprise bench speed`: a minimal HTTP/1.1 client, `concurrency` at a time.

httpx adds a few hundred microseconds per request in Python, as much as an
exact hit costs the gateway; `Connection` writes the request bytes and reads
the status, headers and body, nothing more, so the client's own cost stays
out of the figures (and is the same for every system and for the floors).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: its time, HTTP status and what the cache said about it."""

    seconds: float
    status: int
    cache: str  # "exact", "semantic", "miss", "failed", "bypass" or "" (no header)
    trace: str = ""  # the X-Reprise-Trace header, when asked for


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = (parts.path or "/").encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s" % (
            self.path,
            self.host.encode(),
            extra.encode("latin-1"),
        )
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        reader, writer = self.streams
        writer.write(self.head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            return status, headers, await reader.readexactly(int(headers[b"content-length"]))
        chunks = []
        while size := int((await reader.readline()).strip(), 16):
            chunks.append((await reader.readexactly(size + 2))[:-2])
        await reader.readline()
        if headers.get(b"connection", b"").lower() == b"close":
            await self.aclose()
        return status, headers, b"".join(chunks)

    async def aclose(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            await writer.wait_closed()


def chat_body(model: str, text: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()


def classify(headers: Mapping[bytes, bytes]) -> str:
    status = headers.get(b"x-cache-status", b"").decode().lower()
    if status != "hit":
        return status
    return "exact" if float(headers.get(b"x-cache-score", b"1")) == 0.0 else "semantic"


async def drive(
    url: str, bodies: Sequence[bytes], concurrency: int, headers: Mapping[str, str]
) -> tuple[list[Outcome], float]:
    """POST every body, `concurrency` at a time on as many connections; outcomes, wall time."""
    queue = list(reversed(bodies))
    outcomes: list[Outcome] = []

    async def worker() -> None:
        connection = Connection(url, headers)
        try:
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                status, got, _ = await connection.post(body)
                elapsed = time.perf_counter() - start
                trace = got.get(b"x-reprise-trace", b"").decode()
                outcomes.append(Outcome(elapsed, status, classify(got), trace))
        finally:
            await connection.aclose()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - start
