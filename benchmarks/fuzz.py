"""Fuzz the gateway's HTTP surface with >= 10,000 hypothesis examples; write benchmarks/fuzz.md.

    .venv/bin/python benchmarks/fuzz.py [--per-category 1300] [--out benchmarks/fuzz.md]

The cases and invariants are the CI test's (`reprise/testing/fuzz.py`): the
gateway in-process over ASGITransport with the embedded store, the local model
and the fake upstream process. Every failing case is recorded (not only the
first), with the request that caused it; the cache's consistency is checked at
the end.
"""

from __future__ import annotations

import argparse
import collections
import platform
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from reprise.testing import FakeUpstreamServer
from reprise.testing.fuzz import (
    CATEGORIES,
    Case,
    ThreadedGateway,
    consistency_problems,
    fuzz_gateway,
    run_case,
    seed_known_entry,
)

ROOT = Path(__file__).resolve().parent.parent


class Tally:
    def __init__(self) -> None:
        self.cases: collections.Counter[str] = collections.Counter()
        self.unsendable: collections.Counter[str] = collections.Counter()
        self.statuses: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.failures: list[tuple[str, str, list[str]]] = []
        self.seconds: dict[str, float] = {}


def fuzz_category(gateway: ThreadedGateway, name: str, examples: int, tally: Tally) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=CATEGORIES[name]())
    def run(case: Case) -> None:
        outcome = run_case(gateway, case)
        tally.cases[name] += 1
        if not outcome.sendable:
            tally.unsendable[name] += 1
            return
        tally.statuses[name][f"{outcome.status // 100}xx" if outcome.status else "none"] += 1
        if outcome.problems:
            tally.failures.append((name, case.describe(), outcome.problems))

    start = time.perf_counter()
    run()
    tally.seconds[name] = time.perf_counter() - start


def report(tally: Tally, consistency: list[str], load: str) -> str:
    total = sum(tally.cases.values())
    lines = [
        "# Fuzzing the HTTP surface",
        "",
        f"`.venv/bin/python benchmarks/fuzz.py`: {total:,} hypothesis examples, in-process over",
        "httpx.ASGITransport (the gateway on its own loop in a thread), embedded store, local",
        "model, fake upstream process. Cases and invariants: `reprise/testing/fuzz.py` (CI runs",
        "`tests/app/test_fuzz.py`, 20 per category, and `tests/e2e/test_raw_http.py` for what",
        "ASGITransport cannot send). Invariants: no 5xx unless the backend sent it; every 4xx",
        "of the gateway's own in OpenAI's error shape; an answer within 20 s; nothing raised",
        "out of the app; afterwards the known entry still served unchanged, a new miss stored",
        "and served, no store pending.",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()}; load average at the",
        f"end: {load}.",
        "",
        "| category | examples | not sendable* | 2xx | 4xx | 5xx (backend's) | failures | s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CATEGORIES:
        statuses = tally.statuses[name]
        failures = sum(1 for f in tally.failures if f[0] == name)
        lines.append(
            f"| {name} | {tally.cases[name]:,} | {tally.unsendable[name]:,} | "
            f"{statuses['2xx']:,} | {statuses['4xx']:,} | {statuses['5xx']:,} | {failures} | "
            f"{tally.seconds.get(name, 0):.0f} |"
        )
    lines += [
        f"| **all** | **{total:,}** | {sum(tally.unsendable.values()):,} | | | | "
        f"**{len(tally.failures)}** | |",
        "",
        "\\* refused by the HTTP client itself (e.g. a header value it will not encode), so",
        "never sent. 5xx answers all came from the backend (the fake upstream marks its",
        "responses); a 5xx of the gateway's own would be a failure.",
        "",
        f"Consistency afterwards: {'ok' if not consistency else '; '.join(consistency)}.",
        "",
        "## Failures",
        "",
    ]
    if not tally.failures:
        lines.append("None.")
    for name, case, problems in tally.failures[:200]:
        lines.append(f"- **{name}**: `{case[:400]}`: {'; '.join(problems)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=1300)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "fuzz.md")
    args = parser.parse_args()
    logs = tempfile.TemporaryDirectory(prefix="reprise-fuzz-")
    upstream = FakeUpstreamServer(Path(logs.name)).start()
    gateway = fuzz_gateway(upstream.url)
    tally = Tally()
    try:
        known = seed_known_entry(gateway)
        for name in CATEGORIES:
            fuzz_category(gateway, name, args.per_category, tally)
            print(f"{name}: {tally.cases[name]} cases, {len(tally.failures)} failures so far")
        consistency = consistency_problems(gateway, known, f"after fuzzing {uuid.uuid4().hex}")
    finally:
        gateway.close()
        upstream.close()
        logs.cleanup()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.out.write_text(report(tally, consistency, load.split("load average:")[-1].strip()))
    print(f"wrote {args.out}: {sum(tally.cases.values())} cases, {len(tally.failures)} failures")


if __name__ == "__main__":
    main()
