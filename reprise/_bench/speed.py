"""`reprise bench speed`: what a hit costs and what the gateway adds to a miss, against floors.

Starts two fake upstreams (one answering after `--latency` seconds, one at once)
and `reprise serve` in front of the slow one, per store (`--store embedded`,
`--store redis-managed` starts a Valkey with RediSearch, or `--store redis://...`),
then at each concurrency level (default 1 and 32):

    direct     fresh prompts straight to the slow upstream (what a miss costs at least)
    miss       fresh prompts through the gateway (exact tier, embed, search, forward, store)
    exact      the miss phase's prompts again (exact tier, no embedding)
    semantic   rewordings of those prompts (embed, search, verify), traced

The floors are measured in the same run: the bare model call (one new text
through `LocalEmbedder` in this process, and its batch throughput) and the bare
HTTP round trip (the same client against the instant upstream). Ratios to them
are the figures that survive a busy machine (`ratios`). Every cell reports p50,
p99 and the count of slow outliers (over 3x the cell's p50).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise._bench import report
from reprise._bench.load import Outcome, chat_body, drive
from reprise._bench.stats import percentiles
from reprise.testing import FakeUpstreamServer, GatewayServer, ValkeyServer

WORKLOADS = ("direct", "miss", "exact", "semantic")
HITS = ("exact", "semantic")  # timed over the requests the cache answered so
API = "bench"
MODEL = "gpt-4o-mini"
SLOW = 3.0  # a request over this many times its cell's p50 is a slow outlier

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
    parser.add_argument(
        "--requests",
        type=int,
        action="append",
        default=[],
        help="requests per phase, one per --concurrency level (default: 200, then 12x c)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        default=[],
        help="concurrency level(s) (default: 1 and 32)",
    )
    parser.add_argument("--latency", type=float, default=0.05, help="upstream seconds per answer")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.03,
        help="score-threshold of the generated policy (cosine distance); the rewordings are "
        "within 0.007 of their prompts, distinct prompts at least 0.04 apart",
    )
    parser.add_argument(
        "--store",
        action="append",
        default=[],
        help="embedded, redis-managed (a Valkey with RediSearch from the dev wheels) or a "
        "redis:// URL; repeat to measure several in one run (default: embedded)",
    )
    parser.add_argument("--threads", type=int, default=None, help="local model threads")
    parser.add_argument(
        "--lookup-budget-ms",
        type=float,
        default=250.0,
        help="the gateway's lookup budget (default: its own default, 250 ms)",
    )
    parser.add_argument("--floor-samples", type=int, default=200, help="bare calls per floor")
    parser.add_argument("--out", default="bench-results", help="directory for speed.json / .md")
    parser.add_argument("--name", default="speed", help="file name stem of the outputs")
    parser.add_argument("--no-progress", action="store_true", help="no line per phase on stderr")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = levels(args.concurrency, args.requests)
    result: dict[str, Any] = {
        "load_average_start": _load(),
        "machine": report.machine(),
        "setup": {
            "upstream_latency_s": args.latency,
            "threshold": args.threshold,
            "levels": {str(c): n for c, n in plan},
            "threads": args.threads,
            "lookup_budget_ms": args.lookup_budget_ms,
        },
        "floors": floors(args.threads, args.floor_samples, args.latency),
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="reprise-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        slow = stack.enter_context(FakeUpstreamServer(work, args.latency))
        fast = FakeUpstreamServer(work, 0.0)
        fast.name, fast.log_path = "upstream-fast", work / "upstream-fast.log"
        stack.enter_context(fast)
        result["floors"]["round_trip"] = asyncio.run(round_trip_floor(fast.url, args))
        for store in args.store or ["embedded"]:
            with gateway_for(work, store, slow.url, args) as (name, url):
                progress = None if args.no_progress else name
                cells = asyncio.run(measure(gateway_target(url), slow.url, plan, progress))
            result["stores"][name] = cells | {"ratios": ratios(cells, result["floors"])}
    result["load_average_end"] = _load()
    markdown = render(result)
    print(markdown)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1), "utf-8")
    (out / f"{args.name}.md").write_text(markdown + "\n", "utf-8")
    print(f"\nwrote {out / args.name}.json, .md", file=sys.stderr)
    return 0


def levels(concurrency: Sequence[int], requests: Sequence[int]) -> list[tuple[int, int]]:
    """(concurrency, requests per phase) for each level; enough requests to see a p99."""
    chosen = list(concurrency) or [1, 32]
    if requests and len(requests) not in (1, len(chosen)):
        raise SystemExit("give one --requests, or one per --concurrency level")
    counts = list(requests) * (len(chosen) if len(requests) == 1 else 1)
    if not counts:
        counts = [200 if c == 1 else 12 * c for c in chosen]
    return list(zip(chosen, counts, strict=True))


@contextmanager
def gateway_for(
    work: Path, store: str, upstream_url: str, args: argparse.Namespace
) -> Iterator[tuple[str, str]]:
    """A gateway on `store`: its display name and URL."""
    with ExitStack() as stack:
        if store == "embedded":
            name, cache_url = "embedded", str(work / f"data-{time.monotonic_ns()}")
        elif store == "redis-managed":
            name, cache_url = "Redis", stack.enter_context(ValkeyServer(log_dir=work)).url
        else:
            name, cache_url = "Redis (given URL)", store
        config = write_config(work, upstream_url, cache_url, args)
        gateway = GatewayServer(config, work, args=["--log-level", "warning"])
        yield name, stack.enter_context(gateway).url


def write_config(work: Path, upstream_url: str, cache_url: str, args: argparse.Namespace) -> Path:
    """The gateway under test, by default on the default lookup budget: FAILED lookups count."""
    threshold, threads = args.threshold, args.threads
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
    local: dict[str, Any] = {"url": "local"} | ({"threads": threads} if threads else {})
    config = {
        "backends": {"upstream": {"url": upstream_url + "/v1"}, "embeddings": local},
        "cache": {"url": cache_url, "lookup-budget-ms": args.lookup_budget_ms},
        "apis": [{"name": API, "path": f"/{API}", "backend": "upstream", "policies": policy}],
    }
    path = work / "gateway.yaml"
    path.write_text(json.dumps(config, indent=1), "utf-8")  # JSON is YAML
    return path


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
    # hits what another stored. The trace splits a semantic hit into its steps.
    return Target(
        f"{gateway_url}/{API}/chat/completions",
        lambda c: {"api-key": f"bench-c{c}", "X-Reprise-Trace": "true"},
    )


async def measure(
    target: Target,
    upstream_url: str,
    plan: Sequence[tuple[int, int]],
    progress: str | None = None,
) -> dict[str, Any]:
    """Every workload at every level: {"workloads": {workload: {level: cell}}, "trace": ...}.

    With `progress` (a name), each phase's outcome is a line on stderr.
    """
    direct = upstream_url + "/v1/chat/completions"
    results: dict[str, dict[str, Any]] = {w: {} for w in WORKLOADS}
    traces: dict[str, Any] = {}
    misses: dict[str, Any] = {}
    await _warm_up(target)
    for level, requests in plan:
        if target.clear is not None:
            await target.clear()
        originals, rewordings = prompts(f"c{level}", requests)
        fresh, _ = prompts(f"direct-c{level}", requests)
        phases = {
            "direct": (direct, fresh, {}),
            "miss": (target.chat_url, originals, target.headers(level)),
            "exact": (target.chat_url, originals, target.headers(level)),
            "semantic": (target.chat_url, rewordings, target.headers(level)),
        }
        for workload, (url, texts, headers) in phases.items():
            before = await upstream_calls(upstream_url)
            bodies = [chat_body(MODEL, t) for t in texts]
            outcomes, wall = await drive(url, bodies, level, headers)
            cell = summarise(outcomes, wall, only=workload if workload in HITS else None)
            cell["upstream_calls"] = await upstream_calls(upstream_url) - before
            if set(cell["cache"]) == {""}:  # no cache header: what the upstream did not answer
                cell["hits_per_s"] = (cell["requests"] - cell["upstream_calls"]) / wall
            results[workload][str(level)] = cell
            if progress is not None:
                print(
                    f"{progress} {workload} c={level}: p50 {cell['p50_ms']:.2f} ms, "
                    f"{cell['cache']}",
                    file=sys.stderr,
                )
            if workload == "semantic":
                traces[str(level)] = trace_steps(outcomes)
            elif workload == "miss":
                misses[str(level)] = miss_steps(outcomes)
            await asyncio.sleep(0.5)  # let the last misses' stores land
    return {"workloads": results, "trace": traces, "miss_trace": misses}


def summarise(outcomes: Sequence[Outcome], wall: float, only: str | None = None) -> dict[str, Any]:
    """Latency of the requests the cache answered as `only` (all if None), and the counts.

    A system that says nothing about its cache (the peers: no X-Cache-Status) has
    all its requests timed; its hits are counted from the upstream's calls instead.
    """
    timed = [o.seconds * 1e3 for o in outcomes if only is None or o.cache in (only, "")]
    p50, p90, p99 = percentiles(timed)
    return {
        "requests": len(outcomes),
        "timed": len(timed),
        "errors": sum(o.status != 200 for o in outcomes),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max(timed, default=float("nan")),
        "slow": sum(ms > SLOW * p50 for ms in timed),
        "rps": len(outcomes) / wall if wall > 0 else float("nan"),
        "hits_per_s": sum(o.cache in ("exact", "semantic") for o in outcomes) / wall,
        "wall_s": wall,
        "cache": dict(Counter(o.cache for o in outcomes)),
    }


def trace_steps(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Median, p99 and max of the lookup's steps (ms) over the semantic hits' traces."""
    steps: dict[str, list[float]] = {"embed_ms": [], "search_ms": [], "verify_ms": []}
    for o in outcomes:
        if o.cache != "semantic" or not o.trace:
            continue
        for step in json.loads(o.trace):
            if step.get("step") == "lookup":
                for key, values in steps.items():
                    values.append(float(step[key]))
    return {
        key: {"p50": statistics.median(v), "p99": percentiles(v, (99,))[0], "max": max(v)}
        for key, v in steps.items()
        if v
    }


def miss_steps(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Where a miss's time goes, medians (ms) over the traced misses: the lookup and its
    steps, the time until the backend was called, the backend, and what came after it
    (the response through the gateway and the client)."""
    steps: dict[str, list[float]] = {}
    for o in outcomes:
        if o.cache != "miss" or not o.trace:
            continue
        by_step = {step["step"]: step for step in json.loads(o.trace)}
        lookup, backend = by_step.get("lookup"), by_step.get("backend")
        if lookup is None or backend is None or "ms" not in backend:
            continue
        start = float(backend["at_ms"]) - float(backend["ms"])
        found = {
            "lookup_ms": float(lookup["at_ms"]),
            "embed_ms": float(lookup["embed_ms"]),
            "search_ms": float(lookup["search_ms"]),
            "verify_ms": float(lookup["verify_ms"]),
            "to_backend_ms": start,
            "backend_ms": float(backend["ms"]),
            "after_backend_ms": o.seconds * 1e3 - float(backend["at_ms"]),
        }
        for key, value in found.items():
            steps.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in steps.items()}


async def upstream_calls(upstream_url: str) -> int:
    """Completions the fake upstream has served: a request that did not add one was a hit."""
    reader, writer = await asyncio.open_connection(*_host_port(upstream_url))
    writer.write(b"GET /_control/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(json.loads(data.split(b"\r\n\r\n", 1)[1])["total"])


async def _warm_up(target: Target) -> None:
    """The first requests open the model and the store; they are not measured."""
    bodies = [chat_body(MODEL, f"warm-up question number {i}") for i in range(8)]
    for _ in range(2):
        outcomes, _ = await drive(target.chat_url, bodies, 4, target.headers(0))
        if any(o.status != 200 for o in outcomes):
            raise RuntimeError(f"warm-up failed: {[o.status for o in outcomes]}")


def floors(threads: int | None, samples: int, idle_s: float = 0.05) -> dict[str, Any]:
    """The bare model call: one new text at a time (p50, p99), and texts/s in batches of 32.

    Also a call after `idle_s` of idling (the upstream's latency), as a miss's lookup
    follows the previous miss's backend wait at c=1 (`model_after_idle_p50_ms`): whether
    that costs more than back-to-back calls depends on the machine, and the miss
    overhead is read against both.
    """
    from reprise._embedders.local import LocalEmbedder

    async def go() -> dict[str, Any]:
        embedder = LocalEmbedder(threads=threads)
        try:
            await embedder.embed(["warm up the model"])
            single = []
            texts, _ = prompts("floor", samples)
            for text in texts:
                start = time.perf_counter()
                await embedder.embed([text])
                single.append((time.perf_counter() - start) * 1e3)
            after_idle = []
            for text in prompts("idle", max(1, samples // 4))[0]:
                await asyncio.sleep(idle_s)
                start = time.perf_counter()
                await embedder.embed([text])
                after_idle.append((time.perf_counter() - start) * 1e3)
            batch, _ = prompts("batch", 32 * 8)
            start = time.perf_counter()
            for i in range(0, len(batch), 32):
                await embedder.embed(batch[i : i + 32])
            rate = len(batch) / (time.perf_counter() - start)
        finally:
            await embedder.aclose()
        p50, p99 = percentiles(single, (50, 99))
        return {
            "model_p50_ms": p50,
            "model_p99_ms": p99,
            "model_batch_texts_per_s": rate,
            "model_after_idle_p50_ms": statistics.median(after_idle),
        }

    return asyncio.run(go())


async def round_trip_floor(url: str, args: argparse.Namespace) -> dict[str, float]:
    """The bare HTTP round trip: the same client against the upstream that answers at once."""
    texts, _ = prompts("round-trip", args.floor_samples)
    bodies = [chat_body(MODEL, t) for t in texts]
    await drive(url + "/v1/chat/completions", bodies[:20], 1, {})
    outcomes, _ = await drive(url + "/v1/chat/completions", bodies, 1, {})
    p50, p99 = percentiles([o.seconds * 1e3 for o in outcomes], (50, 99))
    return {"p50_ms": p50, "p99_ms": p99}


def ratios(cells: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each as a ratio to the floors measured in this run."""
    w = cells["workloads"]
    model, trip = floor["model_p50_ms"], floor["round_trip"]["p50_ms"]
    one, top = (str(x) for x in (min(map(int, w["semantic"])), max(map(int, w["semantic"]))))
    semantic, exact = w["semantic"][one], w["exact"][one]
    miss_overhead = w["miss"][one]["p50_ms"] - w["direct"][one]["p50_ms"]
    return {
        "semantic_non_model_vs_model": (semantic["p50_ms"] - model) / model,
        "semantic_p99_vs_p50": semantic["p99_ms"] / semantic["p50_ms"],
        "exact_vs_round_trip": exact["p50_ms"] / trip,
        "miss_overhead_vs_model": miss_overhead / model,
        "miss_overhead_vs_model_after_idle": miss_overhead
        / floor.get("model_after_idle_p50_ms", float("nan")),
        "semantic_rps_vs_batch": w["semantic"][top]["hits_per_s"]
        / floor["model_batch_texts_per_s"],
        "failed_at_top": sum(w[k][top]["cache"].get("failed", 0) for k in w),
        "levels": [int(one), int(top)],
    }


TARGETS = {
    "semantic_non_model_vs_model": ("semantic hit: non-model cost / bare model call, p50", 0.5),
    "semantic_p99_vs_p50": ("semantic hit: p99 / p50", 3.0),
    "exact_vs_round_trip": ("exact hit p50 / bare round trip p50", 1.5),
    "miss_overhead_vs_model": ("miss overhead p50 / bare model call p50", 1.5),
}


def render(result: dict[str, Any]) -> str:
    setup, floor = result["setup"], result["floors"]
    lines = [
        f"Upstream latency {setup['upstream_latency_s']} s, score-threshold "
        f"{setup['threshold']}, requests per phase {setup['levels']}, lookup budget "
        f"{setup['lookup_budget_ms']:.0f} ms. Load average {result['load_average_start']} "
        f"at the start, {result.get('load_average_end', '-')} at the end.",
        "",
        f"Floors: bare model call p50 {floor['model_p50_ms']:.2f} ms (p99 "
        f"{floor['model_p99_ms']:.2f}), {floor['model_batch_texts_per_s']:.0f} texts/s in "
        f"batches of 32; bare HTTP round trip p50 {floor['round_trip']['p50_ms']:.2f} ms (p99 "
        f"{floor['round_trip']['p99_ms']:.2f}). A model call after {setup['upstream_latency_s']} s "
        f"idle (as a miss's, after the previous backend wait) p50 "
        f"{floor.get('model_after_idle_p50_ms', float('nan')):.2f} ms.",
        "",
        report.table(
            ["store", "target", "wanted", "measured", "met"], list(_ratio_rows(result["stores"]))
        ),
        "",
    ]
    for name, cells in result["stores"].items():
        lines += [f"#### {name}", "", _cells_table(cells), "", _trace_line(cells), ""]
    lines.append(f"Machine: {report.machine_line(result['machine'])}")
    return "\n".join(lines)


def _ratio_rows(stores: dict[str, Any]) -> Iterator[list[str]]:
    for name, cells in stores.items():
        r = cells["ratios"]
        one, top = r["levels"]
        for key, (label, bound) in TARGETS.items():
            ok = _yes(r[key] <= bound)
            yield [name, f"{label} (c={one})", f"<= {bound}", f"{r[key]:.2f}", ok]
        after_idle = r.get("miss_overhead_vs_model_after_idle", float("nan"))
        label = f"miss overhead p50 / model call after the upstream's idle p50 (c={one})"
        yield [name, label, "(for reading)", f"{after_idle:.2f}", "-"]
        rps = r["semantic_rps_vs_batch"]
        label = f"semantic hits/s at c={top} / model batch texts/s"
        yield [name, label, ">= 0.8", f"{rps:.2f}", _yes(rps >= 0.8)]
        failed = r["failed_at_top"]
        yield [name, f"FAILED lookups at c={top}", "0", str(failed), _yes(failed == 0)]


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _cells_table(cells: dict[str, Any]) -> str:
    header = ["workload", "c", "p50 ms", "p99 ms", "max ms", "slow", "req/s", "upstream", "cache"]
    rows = []
    for workload, by_level in cells["workloads"].items():
        for level, s in by_level.items():
            cache = ", ".join(f"{k or 'none'} {v}" for k, v in sorted(s["cache"].items()))
            rows.append(
                [
                    workload,
                    level,
                    report.num(s["p50_ms"], 2),
                    report.num(s["p99_ms"], 2),
                    report.num(s["max_ms"], 1),
                    f"{s['slow']}/{s['timed']}",
                    report.num(s["rps"], 0),
                    s["upstream_calls"],
                    cache or "-",
                ]
            )
    return report.table(header, rows)


def _trace_line(cells: dict[str, Any]) -> str:
    parts = []
    for level, steps in cells["trace"].items():
        text = ", ".join(
            f"{k.removesuffix('_ms')} {v['p50']:.2f} / {v['p99']:.2f} / {v['max']:.1f}"
            for k, v in steps.items()
        )
        parts.append(f"- semantic hits at c={level}, lookup steps p50 / p99 / max ms: {text}")
    for level, steps in cells.get("miss_trace", {}).items():
        if steps:
            text = ", ".join(f"{k.removesuffix('_ms')} {v:.2f}" for k, v in steps.items())
            parts.append(f"- misses at c={level}, p50 ms: {text}")
    return "\n".join(parts)


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port.split("/")[0])
