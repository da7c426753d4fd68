"""Soak: 200 clients for >= 60 s on Redis, a Redis restart in the middle; writes soak.md.

    .venv/bin/python benchmarks/soak.py [--clients 200] [--seconds 60] [--warmup 15]
        [--fill 5000] [--burst 1000] [--no-restart] [--out benchmarks/soak.md] [--json FILE]
        [--logs DIR]

Three processes: the fake upstream (a small latency, streams chunk by chunk),
`reprise serve` on a Valkey+RediSearch (all from `reprise.testing`), and this
load generator (aiohttp). Each client loops over a mix of exact hits, semantic
hits (rewordings of the seeded prompts), misses (new prompts), streams (hits
and misses) and streams it hangs up on after the first chunk. Halfway through
the measured run Redis is stopped and started again, empty.

Before the warm-up, `--fill` distinct new prompts (more than the 4,096 texts the
embedding LRU, the verifier's token memory and its rule memos each keep) from a
few clients, then a `--burst` of more from as many clients as the run has (model
calls as large as the run's), bring the gateway's per-text memories and ONNX
Runtime's arena to their bounds: RSS growth after the warm-up then shows a leak,
not a memory still filling. The admin stats show how full each memory is.

Reported: errors (any status but 200, any failure other than the planned
hang-ups), p50/p99 per kind and the cache statuses seen, the gateway's RSS after
the warm-up and at the end, and its open file descriptors (by peer) and asyncio
tasks (`/healthz`) when idle before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from reprise.testing import FakeUpstreamServer, GatewayServer, ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("exact hit", "semantic hit", "miss", "stream", "stream hang-up")
WEIGHTS = (35, 20, 20, 15, 10)
ADMIN_KEY = "soak-admin-key-of-16-chars"
TOPICS = [
    "descale a kettle with vinegar", "reset a router to factory settings",
    "remove a red wine stain from carpet", "repot a cactus without getting hurt",
    "clean a cast iron pan after cooking", "sharpen a kitchen knife with a whetstone",
    "unclog a bathroom sink drain", "change a flat bicycle tyre",
    "fold a fitted bed sheet", "keep basil alive indoors",
    "defrost a freezer quickly", "stop a door from squeaking",
    "clean foggy car headlights", "store fresh ginger",
    "get rid of fruit flies in the kitchen", "boil an egg so the yolk stays soft",
]  # fmt: skip
SEEDED = [f"How do I {topic}?" for topic in TOPICS]
REWORDED = [f"How can I {topic}?" for topic in TOPICS]


def config_yaml(upstream: str, redis_url: str) -> str:
    return f"""
backends:
  chat: {{ url: "{upstream}/v1" }}
  local-embed: {{ url: local }}
cache: {{ url: "{redis_url}?timeout=0.5", lookup-budget-ms: 2000 }}
admin: {{ key: "{ADMIN_KEY}" }}
apis:
  - name: chat
    path: /chat
    backend: chat
    policies: |
      <policies>
        <inbound>
          <base />
          <llm-semantic-cache-lookup score-threshold="0.2" embeddings-backend-id="local-embed" />
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="3600" />
          <base />
        </outbound>
      </policies>
"""


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {what}")


def body(prompt: str, stream: bool) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": stream}


def new_prompt(n: int) -> str:
    return f"A new question, number {n}, about {TOPICS[n % len(TOPICS)]}?"


async def one_request(
    session: aiohttp.ClientSession, url: str, kind: str, rng: random.Random, tally: Tally | None
) -> None:
    i = rng.randrange(len(SEEDED))
    new = new_prompt(rng.randrange(10**9))
    prompt, stream = {
        "exact hit": (SEEDED[i], False),
        "semantic hit": (REWORDED[i], False),
        "miss": (new, False),
        "stream": (rng.choice([SEEDED[i], new]), True),
        "stream hang-up": (new, True),
    }[kind]
    start = time.perf_counter()
    content = b""
    try:
        async with session.post(url, json=body(prompt, stream)) as response:
            if kind == "stream hang-up":
                await response.content.readany()  # the first chunk, then hang up
                response.close()
            else:
                content = await response.read()
            status, cache = response.status, response.headers.get("x-cache-status", "-")
            if status != 200 and tally is not None:
                tally.error(kind, f"status {status}: {content[:160]!r}")
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        if tally is not None:
            tally.error(kind, type(exc).__name__)
        return
    if tally is None:
        return
    if status != 200:
        tally.error(kind, f"status {status}")
        return
    tally.latencies[kind].append(time.perf_counter() - start)
    tally.statuses[kind][cache] += 1


async def client(url: str, seed: int, until: float, tally: Tally | None) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        headers={"Authorization": "Bearer soak-client"}, timeout=timeout
    ) as session:
        while time.monotonic() < until:
            kind = rng.choices(KINDS, WEIGHTS)[0]
            await one_request(session, url, kind, rng, tally)


async def fill(url: str, first: int, texts: int, clients: int) -> dict[str, Any]:
    """Send `texts` distinct new prompts, numbered from `first`, from `clients`."""
    numbers = iter(range(first, first + texts))
    statuses: Counter[str] = Counter()
    start = time.monotonic()

    async def one_client() -> None:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer soak-client"}) as s:
            for n in numbers:  # shared: each number is sent once
                async with s.post(url, json=body(new_prompt(n), False)) as r:
                    await r.read()
                    statuses[f"{r.status} {r.headers.get('x-cache-status', '-')}"] += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    seconds = round(time.monotonic() - start, 1)
    return {"texts": texts, "clients": clients, "seconds": seconds, "seen": dict(statuses)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fds_by_peer(pid: int, ports: dict[int, str]) -> dict[str, int]:
    """The process's descriptors: sockets by the port of the server they reach, and the rest."""
    ends: dict[str, tuple[int, int]] = {}  # socket inode -> (local port, remote port)
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            ends[fields[9]] = (
                int(fields[1].rsplit(":", 1)[1], 16),
                int(fields[2].rsplit(":", 1)[1], 16),
            )
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            local, remote = ends.get(target[8:-1], (0, 0))
            kinds[ports.get(remote) or ports.get(local) or "other sockets"] += 1
        else:
            kinds["files, pipes and epoll"] += 1
    return dict(kinds)


async def memory(base: str) -> dict[str, int]:
    """The gateway's per-text memories and their bounds, from the admin stats."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{base}/reprise/admin/stats") as r,
    ):
        return (await r.json())["caches"][0]["memory"]  # type: ignore[no-any-return]


async def health(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as r:
        return await r.json()  # type: ignore[no-any-return]


async def idle(base: str, pid: int, settle_s: float, ports: dict[int, str]) -> dict[str, Any]:
    """The gateway's resources once nothing is under way and `settle_s` have passed."""
    await asyncio.sleep(settle_s)
    for _ in range(100):
        state = await health(base)
        if not state.get("pending_stores"):
            break
        await asyncio.sleep(0.1)
    return {
        "fds": open_fds(pid),
        "fds_by_peer": fds_by_peer(pid, ports),
        "tasks": state.get("tasks"),
        "rss_mb": round(rss_mb(pid), 1),
        "memory": await memory(base),
    }


async def soak(
    args: argparse.Namespace, gateway: GatewayServer, valkey: ValkeyServer, upstream_port: int
) -> dict[str, Any]:
    assert gateway.pid is not None
    url = f"{gateway.url}/chat/v1/chat/completions"
    ports = {valkey.port: "Redis", upstream_port: "upstream", gateway.port: "listener and clients"}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer soak-client"}) as s:
        for prompt in SEEDED:  # the entries the hits hit
            async with s.post(url, json=body(prompt, False)) as r:
                await r.read()
    before = await idle(gateway.url, gateway.pid, 2.0, ports)
    # Numbered apart from the run's prompts. Few clients: every lookup is admitted, so
    # every prompt is embedded; then as many as the run has: the largest model calls.
    filled = await fill(url, 10**9, args.fill, args.fill_clients)
    burst = await fill(url, 2 * 10**9, args.burst, args.clients)
    warm_until = time.monotonic() + args.warmup
    await asyncio.gather(*(client(url, -n, warm_until, None) for n in range(args.clients)))
    warmed = await idle(gateway.url, gateway.pid, 2.0, ports)
    tally = Tally()
    start = time.monotonic()
    until = start + args.seconds
    load = asyncio.gather(*(client(url, n, until, tally) for n in range(args.clients)))
    restart: dict[str, float] = {}
    if not args.no_restart:
        await asyncio.sleep(args.seconds / 2)
        restart["stopped_at_s"] = round(time.monotonic() - start, 1)
        await asyncio.to_thread(valkey.stop)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(valkey.start)
        restart["back_at_s"] = round(time.monotonic() - start, 1)
    await load
    elapsed = time.monotonic() - start
    after_busy = {"rss_mb": round(rss_mb(gateway.pid), 1), "fds": open_fds(gateway.pid)}
    after = await idle(gateway.url, gateway.pid, args.settle, ports)
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "warmup_s": args.warmup,
        "fill": filled,
        "burst": burst,
        "restart": restart,
        "requests": sum(len(v) for v in tally.latencies.values()) + sum(tally.errors.values()),
        "errors": dict(tally.errors),
        "error_samples": tally.error_samples,
        "kinds": {
            kind: {
                "n": len(tally.latencies[kind]),
                "p50_ms": _pct(tally.latencies[kind], 50),
                "p99_ms": _pct(tally.latencies[kind], 99),
                "cache": dict(tally.statuses[kind]),
            }
            for kind in KINDS
        },
        "idle_before": before,
        "after_warmup": warmed,
        "end_busy": after_busy,
        "idle_after": after,
        "rss_growth_pct": round(100 * (after["rss_mb"] / warmed["rss_mb"] - 1), 2),
    }


def _pct(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return round(values[0] * 1e3, 1) if values else None
    return round(statistics.quantiles(values, n=100)[q - 1] * 1e3, 1)


def report(result: dict[str, Any], load: str) -> str:
    r, f, u = result, result["fill"], result["burst"]
    lines = [
        f"# Soak: {r['clients']} clients on Redis, a Redis restart in the middle",
        "",
        f"`.venv/bin/python benchmarks/soak.py`: {r['clients']} concurrent clients for "
        f"{r['seconds']} s after a fill and a {r['warmup_s']} s warm-up, against `reprise serve`",
        "on Valkey+RediSearch and the fake upstream (20 ms latency, 5 ms between stream chunks),",
        "all local processes from `reprise.testing`; a mix of exact hits, semantic hits",
        "(rewordings of 16 seeded prompts), misses, streams (half hits, half misses) and streams",
        "the client hangs up on after the first chunk. "
        + (
            f"Redis stopped at {r['restart']['stopped_at_s']} s and came back, empty, at "
            f"{r['restart']['back_at_s']} s."
            if r["restart"]
            else "No Redis restart in this run."
        ),
        "",
        f"The fill: {f['texts']:,} distinct new prompts from {f['clients']} clients in "
        f"{f['seconds']} s, then {u['texts']:,} more from {u['clients']} clients in "
        f"{u['seconds']} s, so that the",
        "gateway's per-text memories (embedding LRU, the verifier's token memory and rule memos,",
        "4,096 texts each) and ONNX Runtime's arena (as large as the largest model call so far)",
        "are at their bounds before the warm-up ends and RSS is first measured.",
        "",
        f"Machine: 2 shared cores; load average at the end: {load}. Latencies are end-to-end",
        "through a Python load generator on the same cores, so they measure the box under load",
        "as much as the gateway; the errors and the resources are the point.",
        "",
        f"**Requests: {r['requests']:,}; errors: {sum(r['errors'].values())}**"
        + (f" ({r['errors']})" if r["errors"] else ""),
        "",
        "| kind | answered | p50 ms | p99 ms | X-Cache-Status seen |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, k in r["kinds"].items():
        seen = ", ".join(f"{s} {n:,}" for s, n in sorted(k["cache"].items()))
        lines.append(f"| {kind} | {k['n']:,} | {k['p50_ms']} | {k['p99_ms']} | {seen} |")
    b, w, e, a = r["idle_before"], r["after_warmup"], r["end_busy"], r["idle_after"]
    lines += [
        "",
        "| gateway process | RSS MB | open fds | asyncio tasks |",
        "|---|---:|---:|---:|",
        f"| idle, before any load | {b['rss_mb']} | {b['fds']} | {b['tasks']} |",
        f"| idle, after the warm-up | {w['rss_mb']} | {w['fds']} | {w['tasks']} |",
        f"| end of the run, busy | {e['rss_mb']} | {e['fds']} | |",
        f"| idle, after the run | {a['rss_mb']} | {a['fds']} | {a['tasks']} |",
        "",
        f"RSS growth from after the warm-up to the end: {r['rss_growth_pct']} %.",
        "",
        "| gateway, idle | embedded texts | token-memory texts | token-memory MB |",
        "|---|---:|---:|---:|",
    ]
    for label, m in (("before any load", b), ("after the warm-up", w), ("after the run", a)):
        mem = m["memory"]
        lines.append(
            f"| {label} | {mem['embedded_texts']:,} of {mem['embedded_texts_max']:,} | "
            f"{mem['token_texts']:,} of {mem['token_texts_max']:,} | "
            f"{mem['token_bytes'] / 2**20:.1f} of {mem['token_bytes_max'] / 2**20:.0f} |"
        )
    lines += ["", "Open descriptors by peer, idle:", ""]
    for label, m in (("before any load", b), ("after the warm-up", w), ("after the run", a)):
        peers = "; ".join(f"{kind} {n}" for kind, n in sorted(m["fds_by_peer"].items()))
        lines.append(f"- {label}: {peers}")
    if r["error_samples"]:
        lines += ["", "Error samples:", ""] + [f"- {s}" for s in r["error_samples"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--settle", type=float, default=35.0, help="idle seconds before the end")
    parser.add_argument("--fill", type=int, default=5000, help="distinct prompts before warm-up")
    parser.add_argument("--fill-clients", type=int, default=16)
    parser.add_argument("--burst", type=int, default=1000, help="then distinct prompts at once")
    parser.add_argument("--logs", type=Path, default=None, help="keep the processes' logs here")
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprise-soak-") as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        with (
            ValkeyServer(log_dir=logs) as valkey,
            FakeUpstreamServer(logs, latency=0.02, chunk_delay=0.005) as upstream,
        ):
            config = logs / "gateway.yaml"
            config.write_text(config_yaml(upstream.url, valkey.url))
            with GatewayServer(config, logs, args=["--log-level", "warning"]) as gateway:
                result = asyncio.run(soak(args, gateway, valkey, upstream.port))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout
    load = load.split("load average:")[-1].strip()
    result["load_average"] = load
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(report(result, load))
    print(json.dumps(result, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
