"""What a size bound and the admin bookkeeping cost, as ratios to the unbounded store.

    .venv/bin/python benchmarks/bench_eviction.py            # writes benchmarks/eviction.md
    .venv/bin/python benchmarks/bench_eviction.py --entries 5000 --no-write

Floors, measured in the same run: an upsert and a hot `get` on an unbounded
embedded store (":memory:", random unit vectors, one partition). Against them:

- upsert with `max_entries` a quarter of the entries written, so that every
  upsert past the bound evicts one entry (row map, index and a SQLite delete);
- a hot `get` on that bounded store (which also moves the entry to the back of
  the recency order, persisted in batches);
- `partition_stats` (the admin stats: counts from memory, ages from an index)
  at the full size;
- the gateway's per-hit bookkeeping (`Ledger.lookup`, `hit`, `finished`), in
  microseconds and as a ratio to the hot `get`, both parts of an exact hit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from reprise._gateway.ledger import Ledger, Noted
from reprise._gateway.metrics import Metrics
from reprise._protocols import Entry
from reprise._stores.embedded import EmbeddedStore

ROOT = Path(__file__).resolve().parents[1]
DIMS = 384


def vectors(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def per_call(calls: int, run: Callable[[int], Awaitable[object]]) -> float:
    """Median microseconds per call over 5 rounds of `calls`."""
    rounds = []
    for r in range(5):
        start = time.perf_counter()
        for i in range(calls):
            await run(r * calls + i)
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


async def store_figures(entries: int) -> dict[str, float]:
    vs = vectors(entries * 2)
    out: dict[str, float] = {}
    for name, bound in (("unbounded", None), ("bounded", entries // 4)):
        store = EmbeddedStore(":memory:", max_entries=bound)
        await store.open(DIMS)
        for i in range(entries):  # fill (and, bounded, reach the bound)
            await store.upsert(Entry(f"e{i}", "p", f"prompt {i}", "answer", vs[i]))
        upsert_calls = max(1, entries // 10)

        async def upsert(i: int, store: EmbeddedStore = store) -> None:
            j = entries + i
            await store.upsert(Entry(f"n{j}", "p", f"prompt {j}", "answer", vs[j % len(vs)]))

        out[f"upsert_{name}"] = await per_call(upsert_calls, upsert)
        live = list(store._rows)[-200:]  # recently written: in the hot LRU

        async def get(i: int, store: EmbeddedStore = store, live: list[str] = live) -> None:
            await store.get(live[i % len(live)])

        out[f"get_{name}"] = await per_call(2000, get)
        if name == "unbounded":
            out["stats_ms"] = await per_call(20, lambda i, s=store: s.partition_stats()) / 1e3
            out["stats_entries"] = len(store._rows)
        await store.aclose()
    return out


def ledger_figure() -> float:
    ledger = Ledger(Metrics(), {})
    meta = {"savings": {"model": "gpt-4o", "input_tokens": 20, "output_tokens": 80}}

    class Api:
        name = "chat"

    class Ex:
        api = Api()
        noted = Noted("embed", "partition", "question", "exact match")
        entry, score = "id", 0.0

    calls = 20_000
    start = time.perf_counter()
    for _ in range(calls):
        ledger.lookup("chat", "embed", "partition", "HIT")
        ledger.hit("chat", "embed", "partition", meta)
        ledger.finished(Ex(), "HIT", 200, 1.0)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / calls * 1e6


def table(f: dict[str, float], ledger_us: float, entries: int) -> str:
    load = os.getloadavg()
    rows = [
        ("upsert, unbounded (floor)", f["upsert_unbounded"], 1.0),
        (
            f"upsert, max-entries {entries // 4} (evicts one each)",
            f["upsert_bounded"],
            f["upsert_bounded"] / f["upsert_unbounded"],
        ),
        ("hot get, unbounded (floor)", f["get_unbounded"], 1.0),
        (
            "hot get, bounded (recency kept)",
            f["get_bounded"],
            f["get_bounded"] / f["get_unbounded"],
        ),
        (
            "gateway ledger per hit (lookup + hit + finished)",
            ledger_us,
            ledger_us / f["get_unbounded"],
        ),
    ]
    lines = [
        f"# Size bounds and admin bookkeeping ({entries} entries, {DIMS} dims, ':memory:')",
        "",
        f"Load average while measuring: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"({os.cpu_count()} cores). `benchmarks/bench_eviction.py`.",
        "",
        "| operation | µs per call | ratio to its floor |",
        "|---|---:|---:|",
        *[f"| {name} | {us:.1f} | {ratio:.2f} |" for name, us, ratio in rows],
        "",
        f"`partition_stats` (what `/reprise/admin/stats` reads from the store) at "
        f"{int(f['stats_entries'])} entries: {f['stats_ms']:.2f} ms "
        f"({f['stats_ms'] * 1e3 / f['get_unbounded']:.0f}× a hot get); the admin API "
        "reuses it for 10 s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(store_figures(args.entries))
    text = table(figures, ledger_figure(), args.entries)
    print(text)
    if not args.no_write:
        (ROOT / "benchmarks" / "eviction.md").write_text(text)


if __name__ == "__main__":
    main()
