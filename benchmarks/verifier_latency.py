"""What the verifier adds to a lookup, side by side with the bare embedding call.

    .venv/bin/python benchmarks/verifier_latency.py [--rounds 3] [--redis] [--out FILE]

The traffic is the realistic one: a prompt misses, is stored, and a rewording
of it is looked up later (tests/data/constructed_pairs.jsonl, both labels).
In the same run, the floor: one bare `LocalEmbedder.embed([text])` call per
looked-up text. Reported per verifier: the verify step's p50 / p99 on lookups
with candidates, a semantic hit's whole lookup (embed + search + verify) p50,
and both as ratios to the bare call's p50. "entries from elsewhere" makes the
cache's token memory forget the entry's text after each store, as for an entry
another process stored: its token vectors then come back from the store (stored
with the entry), or, for an entry without them, from one model call. `--redis`
adds that row on a Redis store (a Valkey of its own, from the dev dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprise import (  # noqa: E402
    LearnedVerifier,
    LocalEmbedder,
    SemanticCache,
    ThresholdVerifier,
    Verifier,
)
from reprise._embedders.tokens import TokenMemory  # noqa: E402
from reprise._stores.redis import RedisStore  # noqa: E402

PAIRS = ROOT / "tests" / "data" / "constructed_pairs.jsonl"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def bare_call(rows: list[dict[str, str]], rounds: int) -> list[float]:
    embedder = LocalEmbedder(threads=1)
    try:
        await embedder.embed(["warm up"])
        out = []
        for _ in range(rounds):
            for row in rows:
                t0 = time.perf_counter()
                await embedder.embed([row["text_b"]])
                out.append((time.perf_counter() - t0) * 1e3)
        return out
    finally:
        await embedder.aclose()


async def measure(
    verifier: Verifier,
    rows: list[dict[str, str]],
    rounds: int,
    *,
    forget: bool,
    redis: str | None = None,
) -> tuple[list[float], list[float]]:
    """(verify ms on lookups with candidates, whole lookup ms of semantic hits)."""
    looked: list[float] = []
    hits: list[float] = []
    embedder = LocalEmbedder(threads=1)
    store = (
        ":memory:"
        if redis is None
        else RedisStore(redis, prefix=f"vlat:{uuid.uuid4().hex[:8]}:", timeout=1.0)
    )
    async with SemanticCache(store=store, embedder=embedder, verifier=verifier) as cache:
        for r in range(rounds):
            for i, row in enumerate(rows):
                partition = f"{r}-{i}"
                await cache.explain(row["text_a"], partition)  # the miss before a store
                memory = cache.tokens if forget else None
                if isinstance(memory, TokenMemory):
                    # The writer's miss remembered the entry's vectors (from round 2 on
                    # its embedding comes from the LRU, after the memory was wiped).
                    await memory.token_vectors([row["text_a"]])
                await cache.store(row["text_a"], "answer", partition)
                if isinstance(memory, TokenMemory):
                    memory.forget()
                    # The reader's own question stays remembered, as its embedding call
                    # leaves it (again the LRU would answer that call from round 2 on).
                    await memory.token_vectors([row["text_b"]])
                t0 = time.perf_counter()
                lookup = await cache.explain(row["text_b"], partition)
                total = (time.perf_counter() - t0) * 1e3
                if lookup.candidates:
                    looked.append(lookup.verify_ms)
                if lookup.hit is not None and lookup.hit.tier == "semantic":
                    hits.append(total)
        if redis is not None:
            await cache.clear()
    return looked, hits


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", action="store_true", help="add a row on a Redis store")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with ExitStack() as stack:
        redis = None
        if args.redis:
            from reprise.testing import ValkeyServer

            redis = stack.enter_context(ValkeyServer()).url
        await run(args, redis)


async def run(args: argparse.Namespace, redis: str | None) -> None:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    bare = await bare_call(rows, args.rounds)
    floor = _pct(bare, 0.5)
    load = os.getloadavg()[0]
    lines = [
        f"Bare embedding call (1 thread): p50 {floor:.2f} ms, p99 {_pct(bare, 0.99):.2f} ms; "
        f"load average {load:.1f} at the start; {args.rounds} rounds of {len(rows)} pairs.",
        "",
        "| verifier | semantic hits | lookup p50 ms (hits) | x bare | verify p50 ms | "
        "verify p99 ms | p99 x bare |",
        "|---|---|---|---|---|---|---|",
    ]
    configs: dict[str, tuple[Verifier, bool, str | None]] = {
        "threshold (baseline)": (ThresholdVerifier(), False, None),
        "default": (LearnedVerifier(), False, None),
        "default, entries from elsewhere": (LearnedVerifier(), True, None),
    }
    if redis is not None:
        configs["default, entries from elsewhere, Redis"] = (LearnedVerifier(), True, redis)
    for name, (verifier, forget, url) in configs.items():
        looked, hits = await measure(verifier, rows, args.rounds, forget=forget, redis=url)
        hit50, v50, v99 = _pct(hits, 0.5), _pct(looked, 0.5), _pct(looked, 0.99)
        lines.append(
            f"| {name} | {len(hits)} | {hit50:.2f} | {hit50 / floor:.2f} | {v50:.3f} | "
            f"{v99:.2f} | {v99 / floor:.2f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
