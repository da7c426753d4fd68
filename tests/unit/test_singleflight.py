"""SingleFlight's decisions with a fake lock, and the Redis lock failing open."""

from __future__ import annotations

import asyncio
import socket

import pytest

from reprise._gateway.singleflight import Flight, SingleFlight
from reprise._stores.redis_flight import RedisFlightLock


class HeldElsewhere:
    """A lock another replica holds for `for_polls` polls of `held`."""

    def __init__(self, for_polls: int) -> None:
        self.polls_left = for_polls
        self.released: list[str] = []

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        return False

    async def refresh(self, key: str, token: str, ttl: float) -> bool:
        return True

    async def held(self, key: str) -> bool:
        self.polls_left -= 1
        return self.polls_left > 0

    async def release(self, key: str, token: str) -> None:
        self.released.append(key)

    async def aclose(self) -> None:
        pass


async def test_a_follower_gets_the_leaders_answer_and_the_flight_ends() -> None:
    flights = SingleFlight()
    leader = await flights.enter("k", 5.0, _never)
    assert isinstance(leader, Flight)
    follower = asyncio.create_task(flights.enter("k", 5.0, _never))
    await asyncio.sleep(0)
    leader.settle("the answer")
    leader.finish()
    assert await follower == "the answer"
    assert flights.under_way == 0


async def test_a_follower_gives_up_after_its_wait() -> None:
    flights = SingleFlight()
    leader = await flights.enter("k", 5.0, _never)
    assert await flights.enter("k", 0.05, _never) is None
    assert isinstance(leader, Flight)
    leader.finish()


async def test_a_remote_leaders_answer_is_read_from_the_exact_tier() -> None:
    lock = HeldElsewhere(for_polls=100)
    reads = 0

    async def exact() -> str | None:
        nonlocal reads
        reads += 1
        return "stored by the other replica" if reads >= 3 else None

    flights = SingleFlight(lock)
    assert await flights.enter("k", 5.0, exact) == "stored by the other replica"
    assert flights.under_way == 0


async def test_when_the_remote_lock_goes_without_an_answer_the_follower_goes_alone() -> None:
    flights = SingleFlight(HeldElsewhere(for_polls=2))
    assert await flights.enter("k", 5.0, _never) is None


class Stalled(HeldElsewhere):
    """A lock whose `acquire` hangs (a Redis that stopped answering)."""

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        await asyncio.Event().wait()
        return True


async def test_a_leader_cancelled_while_taking_the_lock_leaves_no_flight_behind() -> None:
    flights = SingleFlight(Stalled(for_polls=1))
    leader = asyncio.create_task(flights.enter("k", 300.0, _never))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.enter("k", 300.0, _never))
    await asyncio.sleep(0)
    leader.cancel()  # its client hung up, or a deadline passed

    assert await asyncio.wait_for(follower, 1.0) is None  # released: goes on alone
    assert flights.under_way == 0


async def test_a_poll_that_raises_leaves_no_flight_behind() -> None:
    async def failing() -> str | None:
        raise RuntimeError("the exact tier broke")

    flights = SingleFlight(HeldElsewhere(for_polls=100))
    with pytest.raises(RuntimeError):
        await flights.enter("k", 5.0, failing)
    assert flights.under_way == 0


async def test_the_redis_lock_fails_open_when_redis_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    lock = RedisFlightLock(f"redis://127.0.0.1:{port}/0", timeout=0.05)
    try:
        assert await lock.acquire("k", "token", 1.0) is True  # go to the backend
        assert await lock.held("k") is False  # a waiting follower goes too
        assert await lock.refresh("k", "token", 1.0) is False
        await lock.release("k", "token")
    finally:
        await lock.aclose()


async def _never() -> str | None:
    return None


class Free(HeldElsewhere):
    """A lock nobody else holds: every acquire takes it; records what it was asked."""

    def __init__(self) -> None:
        super().__init__(for_polls=0)
        self.acquired: list[str] = []
        self.released_tokens: list[str] = []

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        self.acquired.append(token)
        return True

    async def release(self, key: str, token: str) -> None:
        self.released_tokens.append(token)


async def test_a_lock_taken_early_is_the_one_the_leader_holds() -> None:
    lock = Free()
    flights = SingleFlight(lock)
    attempt = flights.early("k")
    assert attempt is not None
    leader = await flights.enter("k", 5.0, _never)
    assert isinstance(leader, Flight)
    assert lock.acquired == [attempt.token] == [leader.token]  # one SET, not two
    flights.done_early(attempt)  # used: not released by the lookup's end
    assert flights.early("k") is None  # a flight is under way: its followers need none
    leader.finish()
    await flights.aclose()
    assert lock.released_tokens == [leader.token]


async def test_a_lock_taken_early_for_lookups_that_hit_is_released_by_the_last() -> None:
    lock = Free()
    flights = SingleFlight(lock)
    first, second = flights.early("k"), flights.early("k")
    assert first is second is not None
    flights.done_early(first)
    await asyncio.sleep(0)
    assert lock.released_tokens == []  # the other lookup may still miss and lead with it
    flights.done_early(second)
    await flights.aclose()
    assert lock.acquired == lock.released_tokens == [first.token]


async def test_locks_are_taken_early_only_while_misses_are_the_rule() -> None:
    flights = SingleFlight(Free())
    assert flights.taking_early
    for _ in range(30):
        flights.note(missed=False)
    assert not flights.taking_early
    for _ in range(30):
        flights.note(missed=True)
    assert flights.taking_early
    assert not SingleFlight().taking_early  # no lock to take: one process only
