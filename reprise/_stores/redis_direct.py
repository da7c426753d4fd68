"""The lookup's Redis commands on connections of the store's own, one command and reply each.

The exact tier (`HMGET`) and the semantic tier (`FT.SEARCH`) are a single
command with a single reply. Sent through `Redis.execute_command`, each one
also paid redis-py's pool lock and stale-data check, its retry wrapper, its
observability hooks and, because the client has a socket timeout, a task per
write (`asyncio.wait_for`): about 80 us a call on this machine against about
50 us here (benchmarks/gateway.md), on the event loop's core, for every lookup.

`DirectCommands` keeps a stack of redis-py connections made from the client's
own settings (address, credentials, TLS, protocol) but without a socket
timeout; the whole command is bounded by one `asyncio.timeout` instead, and a
timeout surfaces as `TimeoutError` (an `OSError`, as a refused connection is).
A connection goes back on the stack only after its reply was read whole;
redis-py disconnects one on any error or cancellation mid-read, and a
disconnected one is dropped, so a reply never reaches the wrong caller. A
connection the server closed while it sat idle (a restart, its idle timeout)
fails on first use and the command is sent once more on a new one, as the
client's own retry does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError


class DirectCommands:
    """Send single commands to the Redis of `pool`, each within `timeout` seconds.

    At most `keep` idle connections are kept; more are made while more commands
    are in flight, and closed when done.
    """

    def __init__(self, pool: ConnectionPool, timeout: float, keep: int = 64) -> None:
        self._kwargs: dict[str, Any] = {**pool.connection_kwargs, "socket_timeout": None}
        self._class = pool.connection_class
        self._timeout = timeout
        self._keep = keep
        self._idle: list[AbstractConnection] = []

    async def execute(self, *args: Any) -> Any:
        """The reply to one command (an error reply raises redis-py's `ResponseError`)."""
        async with asyncio.timeout(self._timeout):
            conn = self._idle.pop() if self._idle else self._new()
            try:
                try:
                    return await self._send(conn, args)
                except RedisConnectionError:
                    await conn.disconnect()  # redis-py has closed it already; make sure
                    conn = self._new()
                    return await self._send(conn, args)
            finally:
                await self._release(conn)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _new(self) -> AbstractConnection:
        conn: AbstractConnection = self._class(**self._kwargs)
        return conn

    @staticmethod
    async def _send(conn: AbstractConnection, args: tuple[Any, ...]) -> Any:
        await conn.send_packed_command(conn.pack_command(*args), check_health=False)
        return await conn.read_response()

    async def _release(self, conn: AbstractConnection) -> None:
        if not conn.is_connected:
            return
        if len(self._idle) < self._keep:
            self._idle.append(conn)
        else:
            await conn.disconnect()
