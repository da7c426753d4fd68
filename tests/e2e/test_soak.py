"""The soak benchmark, shortened: a few seconds of mixed load with a Redis restart.

`benchmarks/soak.py` runs 200 clients for a minute and writes benchmarks/soak.md;
here 20 clients for a few seconds check the same things: no request fails,
through a Redis restart included, and the gateway's asyncio tasks go back to
their idle count afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_with_a_redis_restart_has_no_errors_and_leaks_no_tasks(
    tmp_path: Path,
) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--clients", "20"]
    command += ["--seconds", "6", "--warmup", "1", "--settle", "2", "--json", str(out)]
    command += ["--fill", "40", "--burst", "20"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=240, env=os.environ)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == {}, result["error_samples"]
    assert result["restart"]["back_at_s"] > result["restart"]["stopped_at_s"]
    kinds = result["kinds"]
    assert all(kinds[kind]["n"] > 0 for kind in ("exact hit", "miss", "stream"))
    assert kinds["exact hit"]["cache"].get("HIT", 0) > 0
    # Idle again, the loop runs as many tasks as it did idle after the warm-up.
    assert result["idle_after"]["tasks"] <= result["after_warmup"]["tasks"]
    # Every prompt of the fill was embedded and is remembered (far below the bounds here).
    memory = result["after_warmup"]["memory"]
    assert memory["embedded_texts"] >= 40 + 16
    assert memory["token_texts"] == memory["embedded_texts"]
