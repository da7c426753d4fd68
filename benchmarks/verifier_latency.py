"""What the verifier adds to a lookup: `Lookup.verify_ms` per configuration, real model.

    .venv/bin/python benchmarks/verifier_latency.py [--rounds 5]

The traffic is the realistic one: a prompt misses, is stored, and a rewording
of it is looked up later (tests/data/constructed_pairs.jsonl, both labels).
Prints p50 / p90 of the verify step for semantic hits and for lookups that
found candidates, per verifier, and the whole lookup's p50 for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprise import (  # noqa: E402
    LearnedVerifier,
    RuleVerifier,
    SemanticCache,
    ThresholdVerifier,
    Verifier,
)

PAIRS = ROOT / "tests" / "data" / "constructed_pairs.jsonl"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(name: str, verifier: Verifier, rows: list[dict[str, str]], rounds: int) -> str:
    hits: list[float] = []
    looked: list[float] = []
    total: list[float] = []
    async with SemanticCache(store=":memory:", verifier=verifier) as cache:
        for r in range(rounds):
            for i, row in enumerate(rows):
                partition = f"{r}-{i}"
                # the miss that precedes a store, as in the gateway
                await cache.explain(row["text_a"], partition)
                await cache.store(row["text_a"], "answer", partition)
                lookup = await cache.explain(row["text_b"], partition)
                if lookup.candidates:
                    looked.append(lookup.verify_ms)
                    total.append(lookup.embed_ms + lookup.search_ms + lookup.verify_ms)
                if lookup.hit is not None and lookup.hit.tier == "semantic":
                    hits.append(lookup.verify_ms)
    return (
        f"| {name} | {len(hits)} | {_pct(hits, 0.5):.3f} | {_pct(hits, 0.9):.3f} | "
        f"{_pct(looked, 0.5):.3f} | {statistics.median(total):.2f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    print("| verifier | semantic hits | verify p50 ms (hits) | p90 | verify p50 ms (all "
          "with candidates) | lookup p50 ms (embed+search+verify) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    configs: dict[str, Verifier] = {
        "threshold (baseline)": ThresholdVerifier(),
        "rules": RuleVerifier(),
        "combiner, no head": LearnedVerifier(head=False),
        "default (head)": LearnedVerifier(),
    }
    for name, verifier in configs.items():
        print(await measure(name, verifier, rows, args.rounds), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
