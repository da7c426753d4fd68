"""Gateway latency and throughput: exact hit, semantic hit, and miss overhead.

    .venv/bin/python benchmarks/bench_gateway.py [--n 300] [--http auto|h11|httptools]

Starts the fake upstream (no added latency) and `reprise serve` (embedded
store, local model, threshold 0.15) as processes on free ports, then drives
them over keep-alive HTTP/1.1 connections (a minimal client, see `Connection`):

- direct:        the fake upstream itself, the baseline a miss is compared with
- miss:          new prompts through the gateway (exact tier, embedding, search, backend)
- exact hit:     repeats of stored prompts (exact tier only, no embedding)
- semantic hit:  new rewordings of stored prompts ("Can you tell me ..."), each text
                 new, so the embedding is computed every time; only HITs are timed

Each at concurrency 1 (latency) and 32 (throughput). Client-side times include
the client's socket work; "gateway ms" is the gateway's own time from its log line.
Prints a markdown table and writes it to benchmarks/gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reprise.testing import FakeUpstreamServer, GatewayServer

ROOT = Path(__file__).resolve().parent.parent

SUBJECTS = [
    "France", "Japan", "Brazil", "Canada", "Kenya", "Norway", "Peru", "Vietnam", "Egypt",
    "Chile", "Poland", "Ghana", "Iceland", "Mexico", "Nepal", "Portugal", "Spain", "Turkey",
    "Sweden", "Morocco", "Argentina", "Austria", "Finland", "Greece", "India", "Ireland",
    "Italy", "Jordan", "Laos", "Mongolia", "Belgium", "Bolivia", "Cuba", "Denmark", "Ecuador",
    "Estonia", "Fiji", "Georgia", "Hungary", "Indonesia", "Jamaica", "Kazakhstan", "Latvia",
    "Malta", "Namibia", "Oman", "Panama", "Qatar", "Romania", "Senegal", "Thailand", "Uganda",
    "Uruguay", "Wales", "Yemen", "Zambia",
]  # fmt: skip
TEMPLATES = [
    "What is the capital of {}?",
    "What language is spoken in {}?",
    "What currency does {} use?",
    "What is the population of {}?",
    "What is the national dish of {}?",
    "What is the climate like in {}?",
    "What are the main exports of {}?",
    "When is the best time to visit {}?",
    "What is the highest mountain in {}?",
    "What sports are popular in {}?",
    "How is the government of {} organised?",
    "What is the history of {} in brief?",
    "Which animals are native to {}?",
    "What is the education system of {} like?",
    "Which festivals are celebrated in {}?",
]


def config_yaml(upstream: str, data_dir: str, threads: int | None = None) -> str:
    local = "url: local" + (f", threads: {threads}" if threads else "")
    return f"""
backends:
  upstream: {{ url: "{upstream}/v1" }}
  embeddings: {{ {local} }}
cache: {{ url: "{data_dir}", share-across-credentials: true }}
apis:
  - name: bench
    path: /bench
    backend: upstream
    policies: |
      <policies>
        <inbound>
          <llm-semantic-cache-lookup score-threshold="0.15" embeddings-backend-id="embeddings" />
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="3600" />
        </outbound>
      </policies>
"""


def chat(prompt: str) -> bytes:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    return json.dumps(body).encode()


@dataclass
class Row:
    name: str
    concurrency: int
    times_ms: list[float]
    wall_s: float
    statuses: dict[str, int]
    gateway_ms: list[float]

    def pct(self, values: Sequence[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Connection:
    """A minimal keep-alive HTTP/1.1 client: the client's own cost stays out of the figures.

    httpx adds a few hundred microseconds per request in Python, as much as an
    exact hit costs the gateway; this writes the request bytes and reads the
    status, headers and body, nothing more.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(
        self, path: str, body: bytes, extra: bytes = b""
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """POST `body`; `extra` is more header lines, each ending in CRLF."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer bench\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), extra, len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(b": ", 1) for line in lines[1:] if line)
        headers = {k.lower(): v for k, v in headers.items()}
        if b"content-length" in headers:
            return status, headers, await reader.readexactly(int(headers[b"content-length"]))
        chunks = []
        while size := int((await reader.readline()).strip(), 16):
            chunks.append((await reader.readexactly(size + 2))[:-2])
        await reader.readline()
        return status, headers, b"".join(chunks)

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            await self.streams[1].wait_closed()


async def drive(
    url: str, bodies: list[bytes], concurrency: int, extra: bytes = b""
) -> tuple[list[tuple[float, str]], float]:
    """Send every body, `concurrency` at a time: (ms, cache status) each, and the wall time."""
    results: list[tuple[float, str]] = []
    queue = iter(bodies)
    path = urlsplit(url).path

    async def worker() -> None:
        connection = Connection(url)
        try:
            for body in queue:
                start = time.perf_counter()
                status, headers, content = await connection.post(path, body, extra)
                elapsed = (time.perf_counter() - start) * 1e3
                if status != 200:
                    raise RuntimeError(f"{url}: {status} {content[:200]!r}")
                results.append((elapsed, headers.get(b"x-cache-status", b"-").decode()))
        finally:
            await connection.aclose()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.perf_counter() - start


def gateway_times(log: Path, offset: int, status: str) -> tuple[list[float], int]:
    """The gateway's own `ms` for requests with this cache status logged after `offset`."""
    data = log.read_bytes()
    times = []
    for line in data[offset:].splitlines():
        if b'"event":"request"' in line:
            record = json.loads(line)
            if record.get("cache") == status:
                times.append(float(record["ms"]))
    return times, len(data)


async def measure(args: argparse.Namespace, upstream: str, gateway: str, log: Path) -> list[Row]:
    rows: list[Row] = []
    offset = 0
    direct_url = f"{upstream}/v1/chat/completions"
    gateway_url = f"{gateway}/bench/v1/chat/completions"
    # Warm both paths (connections, the model's first calls).
    await drive(direct_url, [chat(f"warm {i}") for i in range(20)], 4)
    await drive(gateway_url, [chat(f"warm-up question {i}") for i in range(20)], 4)
    await asyncio.sleep(0.5)
    _, offset = gateway_times(log, 0, "")
    prompts = [t.format(s) for t in TEMPLATES for s in SUBJECTS]
    # Disjoint prompts per round, so that no round finds another's entries.
    rounds = {1: args.n, 32: min(args.n * 2, (len(prompts) - 2 * args.n) // 2)}
    used = 0
    for concurrency, n in rounds.items():
        fresh, stored = prompts[used : used + n], prompts[used + n : used + 2 * n]
        used += 2 * n
        # "bypass" skips the lookup (Cache-Control: no-cache) and the store (no-store):
        # the proxying alone, so that a miss's overhead splits into proxy and lookup.
        phases: list[tuple[str, str, list[bytes], str, bytes]] = [
            ("direct (fake upstream)", direct_url, [chat(p) for p in fresh], "-", b""),
            ("bypass (proxy only)", gateway_url, [chat(p) for p in fresh], "BYPASS", _BYPASS),
            ("miss", gateway_url, [chat(p) for p in fresh], "MISS", b""),
        ]
        for name, url, bodies, status, extra in phases:
            results, wall = await drive(url, bodies, concurrency, extra)
            await asyncio.sleep(0.3)
            server, offset = gateway_times(log, offset, status)
            rows.append(_row(name, concurrency, results, wall, server))
        # Fill the cache for the hit phases, one at a time: an overloaded lookup fails
        # open and then stores nothing, which would leave holes in the exact-hit phase.
        await drive(gateway_url, [chat(p) for p in stored], 1)
        await asyncio.sleep(1.0)
        _, offset = gateway_times(log, offset, "")
        rewordings = [f"Can you tell me {p[0].lower()}{p[1:]}" for p in stored]
        for name, texts in (("exact hit", stored), ("semantic hit", rewordings)):
            results, wall = await drive(gateway_url, [chat(p) for p in texts], concurrency)
            await asyncio.sleep(0.3)  # the gateway's log lines land
            server, offset = gateway_times(log, offset, "HIT")
            hits = [(ms, s) for ms, s in results if s == "HIT"]
            row = _row(name, concurrency, hits, wall, server)
            row.statuses = _count(results)
            rows.append(row)
    return rows


_BYPASS = b"Cache-Control: no-cache, no-store\r\n"


def _row(
    name: str, concurrency: int, results: list[tuple[float, str]], wall: float, server: list[float]
) -> Row:
    return Row(name, concurrency, [ms for ms, _ in results], wall, _count(results), server)


def _count(results: list[tuple[float, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, status in results:
        counts[status] = counts.get(status, 0) + 1
    return counts


def table(rows: list[Row]) -> str:
    lines = [
        "| measure | concurrency | requests (statuses) | p50 ms | p90 ms | p99 ms | "
        "gateway p50 ms | req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
        total = sum(r.statuses.values())
        gateway_p50 = f"{statistics.median(r.gateway_ms):.2f}" if r.gateway_ms else "-"
        lines.append(
            f"| {r.name} | {r.concurrency} | {total} ({statuses}) | {r.pct(r.times_ms, 0.5):.2f} | "
            f"{r.pct(r.times_ms, 0.9):.2f} | {r.pct(r.times_ms, 0.99):.2f} | {gateway_p50} | "
            f"{total / r.wall_s:.0f} |"
        )
    return "\n".join(lines)


def overhead(rows: list[Row]) -> str:
    out = []
    for c in (1, 32):
        by = {r.name: r for r in rows if r.concurrency == c}
        direct, bypass, miss = by["direct (fake upstream)"], by["bypass (proxy only)"], by["miss"]
        p50 = {r.name: r.pct(r.times_ms, 0.5) for r in (direct, bypass, miss)}
        out.append(
            f"- miss overhead at concurrency {c}: p50 {p50[miss.name] - p50[direct.name]:.2f} ms "
            f"over calling the fake upstream directly (proxying "
            f"{p50[bypass.name] - p50[direct.name]:.2f} ms, lookup "
            f"{p50[miss.name] - p50[bypass.name]:.2f} ms)"
        )
    return "\n".join(out)


def machine() -> dict[str, Any]:
    import uvicorn

    modules = {}
    for name in ("httptools", "uvloop"):
        try:
            modules[name] = __import__(name).__version__
        except ImportError:
            modules[name] = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load average (1 min, at start)": f"{os.getloadavg()[0]:.2f}",
        "uvicorn": uvicorn.__version__,
        **modules,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="requests per measure at concurrency 1")
    parser.add_argument("--http", default="auto", help="uvicorn HTTP implementation")
    parser.add_argument("--loop", default="auto", help="uvicorn event loop")
    parser.add_argument("--threads", type=int, default=None, help="local model threads")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "gateway.md"))
    args = parser.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="reprise-bench-") as tmp:
        work = Path(tmp)
        config = work / "gateway.yaml"
        upstream = FakeUpstreamServer(work)
        config.write_text(config_yaml(upstream.url, str(work / "data"), args.threads))
        http = ["--http", args.http, "--loop", args.loop]
        gateway = GatewayServer(config, work, args=http, cwd=work)
        with upstream, gateway:
            rows = asyncio.run(measure(args, upstream.url, gateway.url, gateway.log_path))
    report = "\n".join(
        [
            "# Gateway latency and throughput",
            "",
            "Produced by `benchmarks/bench_gateway.py` "
            f"(`--n {args.n} --http {args.http} --loop {args.loop} --threads {args.threads}`). "
            "Client-side times "
            "include a minimal HTTP client; *gateway p50* is the gateway's own time per request "
            "(from its log line). Semantic hits are rewordings never seen before, so each "
            "one computes its embedding; only requests that hit are timed. Misses and "
            "semantic hits include one model call for the prompt's embedding, whose cost on "
            "this machine is in `benchmarks/embedder.md`; exact hits need none.",
            "",
            table(rows),
            "",
            overhead(rows),
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
            "",
        ]
    )
    print(report)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
