"""The README's first command: `reprise demo`, run as users run it (short latency here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.gateway_fixtures import ROOT

pytestmark = pytest.mark.e2e


def test_demo_runs_through_the_gateway_and_labels_the_simulation() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reprise", "demo", "--latency", "0.05"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "SIMULATED" in out
    assert "hit rate:" in out
    lines = out.splitlines()
    # An exact repeat always hits, streamed or not.
    assert any(
        line.startswith("HIT") and "What is the capital of France?" in line for line in lines
    )
    assert any(line.startswith("HIT") and "[stream]" in line for line in lines)
    assert any(line.startswith("MISS") and "[stream]" in line for line in lines)
    # Every outcome is the one a correct cache gives: the rewordings ("Which city is
    # the capital of France?" among them) hit, and every near miss goes to the LLM.
    assert "(expected" not in out, out
