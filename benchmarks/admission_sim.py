"""The lookup gate in front of a simulated micro-batching model: FAILED lookups and hits/s.

    .venv/bin/python benchmarks/admission_sim.py [SLOWDOWN]

Closed-loop clients send semantic lookups through `LookupGate` (the gateway's
admission, unchanged) to a model that batches whatever is queued and takes
`1.8 ms + 2.74 ms per text` (MiniLM on 2 idle cores, benchmarks/results/speed-idle.md:
4.57 ms alone, 357 texts/s in batches of 32), plus 1.5 ms of search and verifier per
lookup, all scaled by SLOWDOWN (1: an idle machine). The model's time is slept, not
computed, so the figures hold on a busy machine: they say what the admission rules
do, not how fast anything runs. A refused or timed-out lookup costs its client a 50 ms
backend call, as in `reprise bench speed`. Phases: c=1, c=32 twice, c=1, c=64.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from reprise._exceptions import LookupShed
from reprise._gateway.admission import AdmissionSettings, LookupGate

BUDGET = 0.25
PHASES = ((1, 100), (32, 384), (32, 384), (1, 50), (64, 768))
KINDS = ("queue full", "expected done", "still queued")


class Model:
    """Runs everything queued (at most 64) as one call of `fixed + per_text x n` seconds."""

    def __init__(self, fixed: float, per_text: float) -> None:
        self.fixed, self.per_text = fixed, per_text
        self.pending: list[asyncio.Future[None]] = []
        self.worker: asyncio.Task[None] | None = None

    async def embed(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:64], self.pending[64:]
            batch = [f for f in batch if not f.done()]
            if batch:
                await asyncio.sleep(self.fixed + self.per_text * len(batch))
            for future in batch:
                if not future.done():
                    future.set_result(None)


@dataclass
class Phase:
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0


async def run_phase(gate: LookupGate, model: Model, extra: float, clients: int, n: int) -> Phase:
    phase, left = Phase(), [n]

    async def lookup() -> None:
        async with asyncio.timeout(BUDGET), gate.admit():
            await model.embed()
            await asyncio.sleep(extra)

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                await lookup()
                phase.counts["hit"] += 1
                continue
            except LookupShed as exc:
                phase.counts["shed"] += 1
                reason = str(exc)
                kind = next((k for k in KINDS if k in reason), reason)
                phase.reasons[kind] += 1
            except TimeoutError:
                phase.counts["timeout"] += 1
            await asyncio.sleep(0.05)  # the backend answers instead

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    phase.wall = time.perf_counter() - start
    return phase


async def main(slowdown: float) -> None:
    model = Model(1.8e-3 * slowdown, 2.74e-3 * slowdown)
    gate = LookupGate(AdmissionSettings(in_flight=64, queued=256, budget_s=BUDGET))
    batch_rate = 32 / (model.fixed + 32 * model.per_text)
    print(f"slowdown {slowdown}: the model runs {batch_rate:.0f} texts/s in batches of 32")
    for clients, n in PHASES:
        p = await run_phase(gate, model, 1.5e-3 * slowdown, clients, n)
        c = p.counts
        print(
            f"  c={clients:<3d} hits {c['hit']:4d}  shed {c['shed']:4d}  timed out "
            f"{c['timeout']:4d}  hits/s {c['hit'] / p.wall:4.0f}  {dict(p.reasons)}"
        )


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
