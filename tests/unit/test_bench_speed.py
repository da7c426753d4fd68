"""`reprise bench speed`'s cells: which requests are timed, and where a miss's time goes."""

from __future__ import annotations

import json

import pytest

from reprise._bench.load import Outcome
from reprise._bench.speed import miss_steps, summarise


def test_a_hit_cell_times_only_the_requests_answered_as_such() -> None:
    outcomes = [Outcome(0.002, 200, "exact"), Outcome(0.004, 200, "exact")]
    outcomes += [Outcome(0.3, 200, "failed")]
    cell = summarise(outcomes, wall=1.0, only="exact")
    assert (cell["requests"], cell["timed"]) == (3, 2)
    assert cell["max_ms"] == 4.0
    assert cell["cache"] == {"exact": 2, "failed": 1}


def test_a_system_without_cache_headers_has_every_request_timed() -> None:
    outcomes = [Outcome(0.01, 200, ""), Outcome(0.03, 200, "")]
    cell = summarise(outcomes, wall=1.0, only="semantic")
    assert cell["timed"] == 2
    assert cell["max_ms"] == 30.0


def test_a_miss_is_split_into_its_lookup_the_backend_and_what_came_after() -> None:
    trace = json.dumps(
        [
            {"step": "partition", "at_ms": 0.1},
            {"step": "lookup", "at_ms": 7.0, "embed_ms": 6.0, "search_ms": 0.2, "verify_ms": 0.0},
            {"step": "decision", "at_ms": 7.0, "status": "MISS"},
            {"step": "backend", "at_ms": 58.0, "status": 200, "ms": 50.5},
        ]
    )
    outcomes = [Outcome(0.059, 200, "miss", trace), Outcome(0.001, 200, "exact", trace)]
    steps = miss_steps(outcomes)
    assert steps["lookup_ms"] == 7.0
    assert steps["embed_ms"] == 6.0
    assert steps["to_backend_ms"] == 7.5
    assert steps["backend_ms"] == 50.5
    assert steps["after_backend_ms"] == pytest.approx(1.0)
