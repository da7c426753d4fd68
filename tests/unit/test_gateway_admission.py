"""Admission of semantic lookups: the pure decision, then the gate's queue on a real loop."""

from __future__ import annotations

import asyncio
import math

import pytest

from reprise._exceptions import CacheError, LookupShed
from reprise._gateway.admission import (
    BATCH_GAIN,
    AdmissionSettings,
    LookupGate,
    Measured,
    _Rate,
    batch_gain,
    running_limit,
    shed_reason,
)

SETTINGS = AdmissionSettings(in_flight=64, queued=8, budget_s=0.25)
ALONE_100 = Measured(rate=100.0, concurrency=1.0)  # one lookup at a time, 10 ms each


def test_a_batch_runs_faster_than_its_lookups_one_by_one() -> None:
    assert batch_gain(1) == pytest.approx(1.0)
    assert 1.5 < batch_gain(32) < BATCH_GAIN
    assert ALONE_100.lookup_s == pytest.approx(0.01)
    assert ALONE_100.seconds(1) == pytest.approx(0.01)
    assert ALONE_100.seconds(32) == pytest.approx(32 / (100 * batch_gain(32)))
    batched = Measured(rate=300.0, concurrency=32.0)  # the gain is in the rate already
    assert batched.seconds(32) == pytest.approx(32 / 300)
    assert Measured(rate=0.0, concurrency=1.0).seconds(1) == math.inf


def test_as_many_run_at_once_as_the_measurement_finishes_within_the_budget() -> None:
    assert running_limit(SETTINGS, None) == 64  # not measured yet: the configured cap
    limit = running_limit(SETTINGS, ALONE_100)
    assert limit == 31  # 20 one by one in 0.2 s; batched, more
    assert ALONE_100.seconds(limit) <= 0.2 < ALONE_100.seconds(limit + 1)
    assert running_limit(SETTINGS, Measured(1000.0, 1.0)) == 64
    assert running_limit(SETTINGS, Measured(1.0, 1.0)) == 1
    assert running_limit(SETTINGS, Measured(0.0, 1.0)) == 1


def test_a_lookup_alone_is_admitted_whatever_the_rate() -> None:
    assert shed_reason(0, SETTINGS, Measured(0.1, 1.0), running=0) is None


def test_a_lookup_that_finishes_within_the_budget_is_admitted() -> None:
    assert shed_reason(0, SETTINGS, ALONE_100, running=30) is None  # 31 in 0.2 s
    assert shed_reason(1, SETTINGS, ALONE_100, running=31) is None  # 33 in 0.21 s: may wait
    assert shed_reason(5, SETTINGS, None, running=64) is None  # nothing measured yet


def test_a_lookup_that_could_not_finish_within_the_budget_is_refused() -> None:
    reason = shed_reason(3, SETTINGS, Measured(100.0, 20.0), running=22)
    assert reason is not None
    assert reason.startswith("overloaded: 22 lookups running, 3 queued, 100 done per second: ")
    assert reason.endswith(" ms > budget 250 ms")


def test_a_full_queue_refuses() -> None:
    assert shed_reason(8, SETTINGS, None, running=64) == "lookup queue full (8 waiting)"


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


async def hold_many(gate: LookupGate, count: int) -> tuple[list[asyncio.Task[None]], asyncio.Event]:
    """`count` lookups admitted and running until the event is set."""
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, [], i, release)) for i in range(count)]
    await asyncio.sleep(0)
    assert gate.running == count
    return tasks, release


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


async def test_the_rate_is_lookups_done_per_second_of_busy_time() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=64, queued=8, budget_s=0.25), clock=clock)
    assert gate.rate.measured is None
    async with gate.admit():
        clock.now += 0.05  # one lookup alone took 50 ms: 20 per second
    first = gate.rate.measured
    assert first is not None
    assert (first.rate, first.concurrency) == (pytest.approx(20.0), 1.0)
    clock.now += 10.0  # idle time counts for nothing
    tasks, release = await hold_many(gate, 4)
    clock.now += 0.1  # four in one model batch, done in 100 ms
    release.set()
    await asyncio.gather(*tasks)
    # 5 done in 0.15 s of busy time, the older weighing less: the rate rose with the batch.
    measured = gate.rate.measured
    assert measured is not None
    assert 30.0 < measured.rate < 40.0
    assert 2.0 < measured.concurrency < 4.0


async def test_quick_lookups_let_a_batch_in_and_refuse_what_would_be_late() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=64, queued=64, budget_s=0.25), clock=clock)
    async with gate.admit():
        clock.now += 0.01  # one lookup alone in 10 ms: 20 in 0.2 s one by one
    tasks, release = await hold_many(gate, 31)  # batched, 31 finish in time
    tasks.append(asyncio.create_task(hold(gate, [], 31, release)))  # would, after a wait
    await asyncio.sleep(0)
    assert (gate.running, gate.waiting) == (31, 1)
    late = [asyncio.create_task(hold(gate, [], 32 + i, release)) for i in range(8)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)  # the one that waited too
    outcomes = await asyncio.gather(*late, return_exceptions=True)
    shed = [str(o) for o in outcomes if isinstance(o, LookupShed)]
    assert shed
    assert all(s.startswith("overloaded: 31 lookups running") for s in shed)


async def test_slow_lookups_are_admitted_only_as_many_as_finish_in_time() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=64, queued=8, budget_s=0.25), clock=clock)
    async with gate.admit():
        clock.now += 0.2  # one lookup alone took 200 ms: 5 per second, the model lags
    assert gate.limit == 1
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], 0, release))
    await asyncio.sleep(0)
    # With one running at 5 per second, a second would be done in about 370 ms: refused now.
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


async def test_slow_lookups_shed_new_ones_until_quick_ones_show_the_load_is_gone() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=8, queued=8, budget_s=0.25), clock=clock)
    async with gate.admit():
        clock.now += 0.3  # the model is overloaded: 3.3 lookups per second
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], 0, release))  # alone: admitted
    await asyncio.sleep(0)
    with pytest.raises(LookupShed, match="overloaded"):
        await hold(gate, [], 1, release)
    for _ in range(20):  # lone lookups of 10 ms: the rate rises
        clock.now += 0.01
        release.set()
        await running
        release = asyncio.Event()
        running = asyncio.create_task(hold(gate, [], 0, release))
        await asyncio.sleep(0)
    assert gate.limit >= 2
    second = asyncio.create_task(hold(gate, [], 1, release))
    await asyncio.sleep(0)
    assert gate.running == 2
    release.set()
    await asyncio.gather(running, second)


async def test_lookups_cut_short_complete_nothing_in_all_their_time() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=64, queued=8, budget_s=0.25), clock=clock)
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
    assert gate.rate.measured == Measured(0.0, 4.0)  # measured, and nothing done
    assert gate.limit == 1
    release = asyncio.Event()
    alone = asyncio.create_task(hold(gate, [], 0, release))  # alone: admitted
    await asyncio.sleep(0)
    with pytest.raises(LookupShed, match="overloaded"):
        await hold(gate, [], 1, release)
    release.set()
    await alone


def test_the_first_of_a_cold_burst_to_finish_is_no_measurement() -> None:
    # A fresh gateway, 32 lookups at once: the first is done after 16 ms while the
    # other 31 are still in the model's batch. One completion in 16 ms with 32
    # running would read 60 per second, and refuse the next arrival.
    rate = _Rate()
    rate.advance(0.016, running=32)
    rate.ended_one(done=True)
    assert rate.measured is None
    assert running_limit(SETTINGS, rate.measured) == SETTINGS.in_flight
    assert shed_reason(0, SETTINGS, rate.measured, running=31) is None
    rate.advance(0.17, running=31)  # the rest of the batch, done together
    for _ in range(31):
        rate.ended_one(done=True)
    measured = rate.measured
    assert measured is not None
    assert measured.rate == pytest.approx(32 / 0.186, rel=0.05)
    assert 30.0 < measured.concurrency < 32.0
    assert running_limit(SETTINGS, measured) >= 32


def test_the_rate_is_measured_once_as_many_lookups_ended_as_ran_at_once() -> None:
    rate = _Rate()
    rate.advance(0.1, running=4)
    for _ in range(3):
        rate.ended_one(done=True)
        assert rate.measured is None
    rate.ended_one(done=False)  # cut short by the budget: it ended all the same
    assert rate.measured == Measured(30.0, 4.0)
    rate.advance(0.1, running=8)  # measured from then on, whatever runs
    rate.ended_one(done=True)
    assert rate.measured is not None


async def test_a_cold_gate_admits_a_burst_while_its_first_batch_finishes() -> None:
    clock = FakeClock()
    gate = LookupGate(AdmissionSettings(in_flight=64, queued=8, budget_s=0.25), clock=clock)
    first = asyncio.Event()
    rest = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, [], 0, first))]
    tasks += [asyncio.create_task(hold(gate, [], i, rest)) for i in range(1, 32)]
    await asyncio.sleep(0)
    clock.now += 0.016
    first.set()
    await tasks[0]
    assert (gate.running, gate.limit) == (31, 64)
    again = asyncio.create_task(hold(gate, [], 32, rest))  # its client is back at once
    await asyncio.sleep(0)
    assert gate.running == 32
    clock.now += 0.17
    rest.set()
    await asyncio.gather(*tasks[1:], again)
    assert gate.rate.measured is not None
    assert gate.limit >= 32


def test_the_rate_does_not_sag_while_a_batch_runs_and_moves_as_lookups_end() -> None:
    rate = _Rate()
    for _ in range(10):  # batches of 30 lookups, 150 ms each: 200 per second
        rate.advance(0.15, running=30)
        for _ in range(30):
            rate.ended_one(done=True)
    before = rate.measured
    assert before is not None
    assert before.rate == pytest.approx(200.0)
    rate.advance(0.1, running=30)  # the next batch, two thirds through
    assert rate.measured == before
    assert running_limit(SETTINGS, rate.measured) >= 32
    rate.advance(0.05, running=30)
    rate.ended_one(done=False)  # one cut short: the rate has to answer for the batch's time
    after = rate.measured
    assert after is not None
    assert after.rate < before.rate
