"""The store's own connections for single commands: replies never cross, dead ones are replaced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from reprise._stores.redis_direct import DirectCommands

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=5.0)
    yield client
    await client.aclose()


@pytest.fixture
async def key(client: aioredis.Redis) -> AsyncIterator[str]:
    """A string key holding b"value"."""
    key = f"direct:{uuid.uuid4().hex}"
    await client.set(key, "value")
    yield key
    await client.delete(key)


@pytest.fixture
def direct(client: aioredis.Redis) -> Callable[[float], DirectCommands]:
    return lambda timeout: DirectCommands(client.connection_pool, timeout=timeout)


async def test_a_connection_is_reused_and_an_error_reply_keeps_it(
    direct: Callable[[float], DirectCommands], key: str
) -> None:
    commands = direct(5.0)
    try:
        assert await commands.execute("GET", key) == b"value"
        assert commands.idle == 1
        with pytest.raises(ResponseError):
            await commands.execute("HGETALL", key)  # WRONGTYPE: the reply was read whole
        assert commands.idle == 1
        assert await commands.execute("GET", key) == b"value"
    finally:
        await commands.aclose()


async def test_a_command_cut_by_the_timeout_leaves_no_reply_behind(
    direct: Callable[[float], DirectCommands], key: str
) -> None:
    commands = direct(0.2)
    try:
        with pytest.raises(TimeoutError):
            await commands.execute("BLPOP", f"{key}:empty", 1)  # answers after 1 s
        assert commands.idle == 0  # that connection's late reply can't reach anyone
        await asyncio.sleep(1.0)
        assert await commands.execute("GET", key) == b"value"
    finally:
        await commands.aclose()


async def test_a_connection_the_server_closed_is_replaced_once(
    client: aioredis.Redis, direct: Callable[[float], DirectCommands], key: str
) -> None:
    commands = direct(5.0)
    try:
        idle_id = await commands.execute("CLIENT", "ID")  # the connection left on the stack
        await client.client_kill_filter(_id=idle_id)
        assert await commands.execute("GET", key) == b"value"
        assert commands.idle == 1
        assert await commands.execute("CLIENT", "ID") != idle_id  # a new one
    finally:
        await commands.aclose()
