"""A bounded in-process copy of the entries this replica read from Redis, kept correct by Redis.

An exact hit on Redis is one `HMGET` on top of the client's round trip. The
near cache answers a repeat from memory instead, for as long as Redis says the
key is unchanged: server-assisted client-side caching (`CLIENT TRACKING`), in
broadcast mode over the store's key prefix, its invalidation messages redirected
to one connection of its own subscribed to `__redis__:invalidate` (RESP2, so it
works whatever protocol the store's other connections speak). Any write to a key
under the prefix by anyone (`HSET`, `DEL`, `UNLINK`, an expiry, an eviction) sends
its name, and the copy is dropped; a `FLUSHDB` / `FLUSHALL` drops every copy.
redis-py's own client-side caching exists for its sync client only, so this is
written here, on redis-py's connection class.

Correctness before speed:

* Nothing is served unless the invalidation connection is subscribed and has
  been heard from within `lease` seconds (a `PING` goes out every `lease / 3`
  seconds): a connection lost, not yet subscribed, or silently dead means the
  near cache is emptied and bypassed, and every read goes to Redis.
* Invalidations are applied in the event loop's I/O callback that reads them
  off the socket (`_Link`), before any task of that loop turn runs a lookup.
* A read that an invalidation of its key (or a reconnect) overtakes while its
  reply is under way is not kept (`begin` / `end`), so an old value read just
  before a change never outlives the change's message.
* This process's own writes and deletes drop the copy before and after they go
  to Redis, without waiting for the message.
* The entry's own `expires_at` is checked on every read (the store does), and
  copies are bounded by count and by bytes, least recently used first.

What remains is the delivery delay of an invalidation from another replica
(the time for a message to cross from Redis to here, well under a millisecond
on one network): a request in that window is answered as it would have been a
moment earlier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ResponseError

from reprise._protocols import Entry

logger = logging.getLogger("reprise.store")

CHANNEL = "__redis__:invalidate"
DEFAULT_ENTRIES = 10_000
DEFAULT_BYTES = 64 * 1024 * 1024
DEFAULT_LEASE = 3.0  # seconds without a word from the invalidation connection
_RETRY_FIRST, _RETRY_MAX = 0.25, 2.0
_OVERHEAD = 200  # bytes per copy beyond its strings and vector, roughly


def entry_bytes(entry: Entry) -> int:
    """Roughly what a copy of `entry` holds in memory, for the byte bound."""
    size = _OVERHEAD + len(entry.prompt) + len(entry.response) + len(entry.partition)
    size += len(entry.context) + len(entry.id)
    if entry.vector is not None:
        size += int(entry.vector.nbytes)
    return size + 64 * len(entry.meta)


class NearCache:
    """Copies of entries (by entry id) of the keys under `prefix`, while Redis tracks them.

    `start()` runs the invalidation listener as a task; `aclose()` stops it.
    Until it has subscribed, and whenever it loses its connection, `get`
    returns None and `end` keeps nothing.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        prefix: str,
        *,
        max_entries: int = DEFAULT_ENTRIES,
        max_bytes: int = DEFAULT_BYTES,
        lease: float = DEFAULT_LEASE,
        connect_timeout: float = 1.0,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            **pool.connection_kwargs,
            "protocol": 2,  # invalidations as pub/sub messages on a subscribed connection
            "socket_timeout": None,  # a blocking read; liveness is the lease's
            "socket_connect_timeout": connect_timeout,
        }
        self._class = pool.connection_class
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.lease = lease
        self._copies: OrderedDict[str, tuple[Entry, int]] = OrderedDict()
        self.bytes = 0
        self._subscribed = False
        self._heard = 0.0  # monotonic time of the last message on the connection
        self._epoch = 0  # bumped whenever every copy is dropped
        self._reading: dict[str, int] = {}  # entry id -> reads under way
        self._overtaken: set[str] = set()  # ids invalidated while a read was under way
        self._task: asyncio.Task[None] | None = None
        self._link: _Link | None = None  # the subscribed connection, when there is one
        self._unsupported_logged = False

    # -- reads and writes of the store

    @property
    def serving(self) -> bool:
        """Whether copies may be served: subscribed, and heard from within the lease."""
        return self._subscribed and time.monotonic() - self._heard < self.lease

    def get(self, entry_id: str) -> Entry | None:
        if not self._copies:
            return None
        if not self.serving:
            self.clear()
            return None
        found = self._copies.get(entry_id)
        if found is None:
            return None
        self._copies.move_to_end(entry_id)
        return found[0]

    def begin(self, entry_id: str) -> int | None:
        """A read of `entry_id` from Redis starts; pass what this returns to `end`."""
        if not self._subscribed:
            return None
        self._reading[entry_id] = self._reading.get(entry_id, 0) + 1
        return self._epoch

    def end(self, entry_id: str, token: int | None, entry: Entry | None) -> None:
        """The read started by `begin` is over: keep `entry` unless it was overtaken."""
        if token is None:
            return
        left = self._reading.get(entry_id, 1) - 1
        overtaken = entry_id in self._overtaken
        if left > 0:
            self._reading[entry_id] = left
        else:
            self._reading.pop(entry_id, None)
            self._overtaken.discard(entry_id)
        if entry is None or overtaken or token != self._epoch or not self.serving:
            return
        self._put(entry)

    def drop(self, entry_id: str) -> None:
        """`entry_id` changed or went: drop the copy, and any read of it under way."""
        found = self._copies.pop(entry_id, None)
        if found is not None:
            self.bytes -= found[1]
        if entry_id in self._reading:
            self._overtaken.add(entry_id)

    def clear(self) -> None:
        """Drop every copy; reads under way keep nothing."""
        self._epoch += 1
        self._copies.clear()
        self.bytes = 0

    @property
    def size(self) -> int:
        """Copies held."""
        return len(self._copies)

    def _put(self, entry: Entry) -> None:
        size = entry_bytes(entry)
        if self.max_entries <= 0 or size > self.max_bytes:
            return
        old = self._copies.pop(entry.id, None)  # not `drop`: no read here is overtaken
        if old is not None:
            self.bytes -= old[1]
        self._copies[entry.id] = (entry, size)
        self.bytes += size
        while len(self._copies) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, freed) = self._copies.popitem(last=False)
            self.bytes -= freed

    # -- the invalidation connection

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="redis-near-cache")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._lost()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _listen(self) -> None:
        delay = _RETRY_FIRST
        while True:
            link = _Link(self)
            try:
                await link.subscribe(self._kwargs, self._class, self.prefix, self.lease)
                self.clear()  # nothing read before the subscription can be trusted
                self._heard = time.monotonic()
                self._link, self._subscribed = link, True
                link.subscribed = True
                delay = _RETRY_FIRST
                await link.until_lost(self.lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection, a refused command: bypass
                self._log_failure(exc)
            finally:
                if self._link is link:
                    self._lost()
                if link.subscribed:
                    logger.info("near cache: invalidation connection lost; bypassed until back")
                await link.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    def _handle(self, message: Any) -> None:
        """A message on the subscribed connection: an invalidation, or a PING's "pong"."""
        self._heard = time.monotonic()
        if not isinstance(message, list) or len(message) < 3 or message[0] != b"message":
            return
        keys = message[2]
        if keys is None:  # FLUSHDB / FLUSHALL
            self.clear()
            return
        skip = len(self.prefix)
        for key in keys if isinstance(keys, list) else [keys]:
            name = _text(key)
            if name.startswith(self.prefix):
                self.drop(name[skip:])

    def _lost(self) -> None:
        self._subscribed = False
        self._link = None
        self.clear()

    def _log_failure(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, ResponseError):
            if not self._unsupported_logged:
                self._unsupported_logged = True
                logger.warning(
                    "Redis refused client tracking (%s); the near cache stays off and "
                    "every exact lookup reads Redis",
                    text[:200],
                )
            return
        logger.debug("near cache: no invalidation connection (%s); retrying", text)


class _Link:
    """One connection subscribed to the invalidations, its bytes parsed as they arrive.

    redis-py makes the connection (address, TLS, credentials, database); from
    then on the stream's `feed_data` is this link's, so an invalidation is
    applied in the event loop's I/O callback that reads it, before any task of
    the same loop turn (a lookup) runs, rather than when a reader task gets to it.
    """

    def __init__(self, near: NearCache) -> None:
        self.near = near
        self.conn: AbstractConnection | None = None
        self.parser = hiredis.Reader()
        self.replies: asyncio.Queue[Any] = asyncio.Queue()
        self.gone = False  # the connection ended
        self.subscribed = False  # it was, at some point: its loss is worth a log line

    async def subscribe(
        self, kwargs: dict[str, Any], cls: type[AbstractConnection], prefix: str, lease: float
    ) -> None:
        conn = self.conn = cls(**kwargs)
        async with asyncio.timeout(lease):
            await conn.connect()  # type: ignore[no-untyped-call]
        reader: Any = conn._reader
        reader.feed_data, reader.feed_eof = self._feed, self._eof
        reader.set_exception = lambda exc: self._eof()
        client_id = await self._command(lease, "CLIENT", "ID")
        await self._command(
            lease, "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", prefix
        )
        reply = await self._command(lease, "SUBSCRIBE", CHANNEL)
        if not (isinstance(reply, list) and reply[0] == b"subscribe"):
            raise ConnectionError(f"unexpected reply to SUBSCRIBE: {reply!r}")

    async def until_lost(self, lease: float) -> None:
        """Ping every lease / 3 until the connection ends or is silent for a lease.

        A loss empties the near cache at once (`_eof`); this only notices it, within
        lease / 3, to reconnect.
        """
        while True:
            await asyncio.sleep(lease / 3)
            if self.gone or time.monotonic() - self.near._heard >= lease:
                return  # gone, or silent: lost, whatever the socket says
            await self._send("PING")

    async def close(self) -> None:
        self.gone = True
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.disconnect()
            except Exception as exc:  # closing a broken connection
                logger.debug("near cache: closing its connection: %s", exc)

    async def _command(self, lease: float, *args: Any) -> Any:
        await self._send(*args)
        async with asyncio.timeout(lease):
            reply = await self.replies.get()
        if reply is _GONE:
            raise ConnectionError("the connection closed")
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def _send(self, *args: Any) -> None:
        assert self.conn is not None
        await self.conn.send_packed_command(self.conn.pack_command(*args), check_health=False)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
            while (reply := self.parser.gets()) is not False:
                if isinstance(reply, list) and reply and reply[0] in (b"message", b"pong"):
                    if self.near._link is self:
                        self.near._handle(reply)
                else:
                    self.replies.put_nowait(reply)
        except Exception:  # unreadable bytes: nothing after them can be trusted
            self._eof()

    def _eof(self) -> None:
        if self.near._link is self:
            self.near._lost()
        self.gone = True
        self.replies.put_nowait(_GONE)


_GONE = object()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
