"""Short single-turn semantic hits: the whole lookup beside the bare embedding call.

    .venv/bin/python benchmarks/context_latency.py [--rounds 3] [--label NAME]

Structured request keys must cost a lone short prompt nothing: it has no
context, and its question is the prompt itself. Each pair of
tests/data/constructed_pairs.jsonl has `text_a` stored, then `text_b` (never
embedded before) looked up with `SemanticCache.explain`; just before, the same
`text_b` is embedded by a second, bare `LocalEmbedder`: the floor, measured in
the same moment on the same machine. Only semantic hits are counted. The
script uses the public API alone, so that it runs unchanged against an older
checkout (`PYTHONPATH=<old tree>`) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from reprise import LocalEmbedder, SemanticCache

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "constructed_pairs.jsonl"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    bare, lookup = [], []
    floor = LocalEmbedder()
    await floor.embed(["warm up"])
    for r in range(args.rounds):
        # A fresh cache per round: its LRU has never seen `text_b`.
        async with SemanticCache(store=":memory:") as cache:
            await cache.explain("warm up")
            for i, row in enumerate(rows):
                partition = f"{r}-{i}"
                await cache.store(row["text_a"], "answer", partition)
                t0 = time.perf_counter()
                await floor.embed([f"{row['text_b']}"])
                t1 = time.perf_counter()
                found = await cache.explain(row["text_b"], partition)
                t2 = time.perf_counter()
                if found.hit is not None and found.hit.tier == "semantic":
                    bare.append((t1 - t0) * 1e3)
                    lookup.append((t2 - t1) * 1e3)
    await floor.aclose()
    ratio = statistics.median(lookup) / statistics.median(bare)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"| {args.label} | {len(lookup)} | {_pct(bare, 0.5):.2f} | {_pct(bare, 0.9):.2f} | "
        f"{_pct(lookup, 0.5):.2f} | {_pct(lookup, 0.9):.2f} | {ratio:.2f} | {load} |"
    )


if __name__ == "__main__":
    asyncio.run(main())
