"""Fuzzing the HTTP surface in-process: no 5xx of the gateway's own, OpenAI-shaped 4xx, no hang.

A bounded number of hypothesis examples per category (`benchmarks/fuzz.py`
runs more than 10,000 and writes benchmarks/fuzz.md). The gateway runs on a
loop of its own in a thread (`reprise/testing/fuzz.py`), so that a hung request
fails its case after a timeout instead of hanging the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
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

EXAMPLES_PER_CATEGORY = 20


@pytest.fixture(scope="module")
def fuzzed(fake_upstream: FakeUpstreamServer) -> Iterator[tuple[ThreadedGateway, str]]:
    gateway = fuzz_gateway(fake_upstream.url)
    try:
        yield gateway, seed_known_entry(gateway)
    finally:
        gateway.close()


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_fuzzed_requests_keep_the_invariants(
    fuzzed: tuple[ThreadedGateway, str], category: str
) -> None:
    gateway, _ = fuzzed

    @settings(
        max_examples=EXAMPLES_PER_CATEGORY,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=CATEGORIES[category]())
    def check(case: Case) -> None:
        outcome = run_case(gateway, case)
        assert not outcome.problems, f"{case.describe()}: {outcome.problems}"

    check()


def test_the_cache_is_consistent_after_fuzzing(fuzzed: tuple[ThreadedGateway, str]) -> None:
    gateway, known = fuzzed
    fresh = f"A question asked after the fuzzing {uuid.uuid4().hex[:8]}"
    assert consistency_problems(gateway, known, fresh) == []
