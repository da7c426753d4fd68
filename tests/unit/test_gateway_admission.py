"""Admission of semantic lookups: the pure decision, then the gate's queue on a real loop."""

from __future__ import annotations

import asyncio

import pytest

from reprise._exceptions import CacheError, LookupShed
from reprise._gateway.admission import (
    AdmissionSettings,
    LookupGate,
    running_limit,
    shed_reason,
)

SETTINGS = AdmissionSettings(in_flight=64, queued=8, budget_s=0.25)


def test_as_many_run_at_once_as_the_measured_rate_finishes_within_the_budget() -> None:
    assert running_limit(SETTINGS, rate=0.0) == 64  # not measured yet: the configured cap
    assert running_limit(SETTINGS, rate=100.0) == 20  # 100/s x 0.25 s x headroom 0.8
    assert running_limit(SETTINGS, rate=1000.0) == 64
    assert running_limit(SETTINGS, rate=1.0) == 1


def test_a_lookup_alone_is_admitted_whatever_the_rate() -> None:
    assert shed_reason(0, SETTINGS, rate=0.1, running=0) is None


def test_a_lookup_that_finishes_in_time_at_the_measured_rate_is_admitted() -> None:
    assert shed_reason(0, SETTINGS, rate=100.0, running=19) is None  # 20 / 100/s = 0.2 s
    assert shed_reason(5, SETTINGS, rate=0.0, running=64) is None  # nothing measured yet


def test_a_lookup_that_could_not_finish_within_the_budget_is_refused() -> None:
    reason = shed_reason(3, SETTINGS, rate=100.0, running=17)
    assert reason == (
        "overloaded: 17 lookups running, 3 queued, 100 done per second: "
        "expected done in 210 ms > budget 250 ms"
    )


def test_a_full_queue_refuses() -> None:
    assert shed_reason(8, SETTINGS, rate=0.0, running=64) == "lookup queue full (8 waiting)"


def test_a_shed_lookup_fails_open_like_any_cache_error() -> None:
    assert issubclass(LookupShed, CacheError)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def hold(gate: LookupGate, entered: list[int], index: int, release: asyncio.Event) -> None:
    async with gate.admit():
        entered.append(index)
        await release.wait()


async def test_lookups_beyond_the_slots_wait_and_start_in_arrival_order() -> None:
    gate = LookupGate(AdmissionSettings(in_flight=2, queued=8, budget_s=60.0))
    entered: list[int] = []
    releases = [asyncio.Event() for _ in range(4)]
    tasks = [asyncio.create_task(hold(gate, entered, i, releases[i])) for i in range(4)]
    await asyncio.sleep(0)
    assert entered == [0, 1]
    assert (gate.running, gate.waiting) == (2, 2)
    releases[1].set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert entered == [0, 1, 2]
    for release in releases:
        release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3]
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_full_queue_refuses_at_once_without_running_the_lookup() -> None:
    gate = LookupGate(AdmissionSettings(in_flight=1, queued=1, budget_s=60.0))
    entered: list[int] = []
    release = asyncio.Event()
    first = asyncio.create_task(hold(gate, entered, 0, release))
    second = asyncio.create_task(hold(gate, entered, 1, release))
    await asyncio.sleep(0)
    with pytest.raises(LookupShed, match="queue full"):
        await hold(gate, entered, 2, release)
    release.set()
    await asyncio.gather(first, second)
    assert entered == [0, 1]


async def test_the_rate_comes_from_how_long_lookups_took() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=8, queued=8, budget_s=0.25), clock=clock)
    async with gate.admit():
        clock.now += 0.2  # one lookup alone took 200 ms: 5 per second
    assert gate.rate.per_s == pytest.approx(5.0)
    assert gate.limit == 1
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], 0, release))
    await asyncio.sleep(0)
    # Behind one lookup at 5 per second, a second would be done in 400 ms: refused now.
    with pytest.raises(LookupShed, match="overloaded: 1 lookups running, 0 queued, 5 done"):
        await hold(gate, [], 1, release)
    release.set()
    await running


async def test_a_lookup_still_queued_at_its_start_deadline_is_refused() -> None:
    gate = LookupGate(AdmissionSettings(in_flight=1, queued=8, budget_s=0.02))
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], 0, release))
    await asyncio.sleep(0)
    with pytest.raises(LookupShed, match="still queued"):
        await hold(gate, [], 1, release)
    assert gate.waiting == 0
    release.set()
    await running
    assert gate.running == 0


async def test_a_caller_giving_up_in_the_queue_leaves_no_slot_taken() -> None:
    gate = LookupGate(AdmissionSettings(in_flight=1, queued=8, budget_s=60.0))
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], 0, release))
    await asyncio.sleep(0)
    queued = asyncio.create_task(hold(gate, [], 1, release))
    await asyncio.sleep(0)
    assert gate.waiting == 1
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    await running
    assert (gate.running, gate.waiting) == (0, 0)
    entered: list[int] = []
    async with gate.admit():
        entered.append(1)
    assert entered == [1]


async def test_slow_lookups_shed_new_ones_until_a_lone_one_shows_the_load_is_gone() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=8, queued=8, budget_s=0.25), clock=clock)
    async with gate.admit():
        clock.now += 0.3  # the model is overloaded: 3.3 lookups per second
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], 0, release))  # alone: admitted
    await asyncio.sleep(0)
    with pytest.raises(LookupShed, match="overloaded"):
        await hold(gate, [], 1, release)
    clock.now += 0.01  # the lone lookup was quick: the rate rises
    release.set()
    await running
    assert gate.limit >= 2
    entered: list[int] = []
    both = asyncio.Event()
    first = asyncio.create_task(hold(gate, entered, 2, both))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold(gate, entered, 3, both))
    await asyncio.sleep(0)
    both.set()
    await asyncio.gather(first, second)
    assert entered == [2, 3]


async def test_a_lookup_cut_short_counts_as_one_in_all_its_time() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=8, queued=8, budget_s=0.25), clock=clock)
    entered: list[int] = []
    gate_open = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, entered, i, gate_open)) for i in range(4)]
    await asyncio.sleep(0)
    assert gate.running == 4
    clock.now += 0.25
    for task in tasks:  # the budget ran out for all four
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.running == 0
    assert gate.rate.per_s == pytest.approx(4.0)  # 1 / 0.25 s each, not 4 / 0.25 s
