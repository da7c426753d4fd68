"""`reprise bench speed`'s cells: which requests are timed."""

from __future__ import annotations

from reprise._bench.load import Outcome
from reprise._bench.speed import summarise


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
