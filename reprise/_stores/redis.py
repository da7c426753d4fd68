"""A `VectorStore` in Redis with the RediSearch (Query Engine) module.

Layout. One hash per entry under `prefix + entry.id`:

    ptag        TAG     hex digest of the partition (the KNN pre-filter)
    ctag        TAG     hex digest of the entry's context (matched exactly too)
    vector      VECTOR  HNSW, FLOAT32, COSINE, DIM from the embedder
    partition, context, prompt, response, created_at, expires_at, meta (JSON)   not indexed
    tokens      the prompt's token vectors (`token_blob`), when the local model embedded it

The exact tier is `HMGET` of the entry's fields on the key, which is the
exact-match hash itself (`Prompt.key(partition)`), so it needs no index and no
TAG of its own. `tokens` (~10 kB for a question) is read by neither the exact
tier nor a search: the cache asks for it (`stored_tokens`, one `HGET`) only for
a candidate its verifier judges and whose vectors it does not remember.
The partition and context are indexed as digests rather than as themselves: TAG
syntax needs every punctuation character escaped and cannot express the empty
string, and a fixed-length hex digest needs neither. The semantic tier is one query,

    (@ptag:{<digest>} @ctag:{<digest>})=>[KNN k @vector $vec EF_RUNTIME n AS dist]

whose `dist` is RediSearch's COSINE distance, `1 - cos`: the unit of the
embedded store and of `score_threshold`. Replies are parsed in both RESP2
(flat lists) and RESP3 (maps), because redis-py 8 speaks RESP3 by default
and a `?protocol=2` in the URL switches it back.

Key layout. An index without the `ctag` field was made for key layout 1 (one
flattened text per request, no context): its entries could answer the wrong
requests, so the first call that finds it drops it with its entries
(`FT.DROPINDEX ... DD`) and logs how many, then creates the new index.

Expiry. `upsert` sets `PEXPIREAT` from `expires_at`, so Redis deletes an
expired entry and RediSearch drops it from the index on its own; reads also
check `expires_at`, since a key can outlive its deadline by a few ms.

Sharing. Several processes may open the same prefix and index: `FT.CREATE`
racing with another process's ends in "Index already exists", which is
then checked like any existing index. An existing index whose vector field
disagrees with the embedder (dimension, metric, type) or that covers another
prefix raises `IndexMismatch`; it is never dropped (see README, "Production:
Redis", for migrating).

Eviction. Redis bounds its own memory: with `maxmemory` and an eviction
policy (`allkeys-lru`, or `volatile-lru` when every entry has a TTL) it
deletes least recently used keys by itself, and RediSearch drops them from
the index. A search that still meets a key gone between the index and the
read skips it (`_matches`); `get` of an evicted key is a miss. `evictions`
reports the server's `evicted_keys`, as last read by `partition_stats`.

Near cache. Entries this process read by id (`get`: the exact tier), or wrote
(read back once after the write), are kept in memory while Redis says their keys
are unchanged (`redis_near`: client-side
caching with `CLIENT TRACKING ... BCAST PREFIX`), so an exact repeat costs no
round trip. Any write, delete, expiry or flush of a key under the prefix, by any
process, drops the copy; without a live invalidation connection nothing is
served from it. `near_cache` bounds it in entries (0 turns it off) and
`near_cache_mb` in megabytes, also as URL options (`?near_cache=0`).

Failure. Every Redis error becomes a `StoreError`; an unreachable server is
`StoreUnavailable`, raised within `timeout` seconds (default 0.1 s, well
inside a 250 ms lookup budget: socket and connect timeouts on the client, one
deadline per command on the single commands of `redis_direct`; either retries
once on a new connection, which is what a restarted server needs). After a
failure the store stops calling Redis for a back-off window (0.25 s doubling
to 2 s) and fails fast meanwhile; then one call probes, and its success ends
the outage. So `open()` may raise `StoreUnavailable` and the
caller can serve uncached: the index is created lazily by the first call that
reaches Redis, and again after any outage, because a restarted Redis without
persistence comes back without it. Caching resumes within ~2 s of Redis
returning, without hammering a dead server meanwhile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.commands.search.field import TagField, VectorField
from redis.commands.search.index_definition import IndexDefinition, IndexType
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from reprise._exceptions import ConfigError, IndexMismatch, StoreError, StoreUnavailable
from reprise._protocols import KEY_LAYOUT, Entry, Match, PartitionStats, Vector
from reprise._stores.redis_client import DEFAULT_TIMEOUT, RedisClients, split_url, url_timeout
from reprise._stores.redis_direct import DirectCommands
from reprise._stores.redis_near import DEFAULT_BYTES, DEFAULT_ENTRIES, NearCache

T = TypeVar("T")
logger = logging.getLogger("reprise.store")

# From benchmarks/redis.md (100k real MiniLM embeddings, a 98 % and a 2 % partition):
# EF_RUNTIME=100 is the smallest swept value with near-duplicate recall@1 and @5
# >= 0.995 in both (10 gives recall@1 0.994); RediSearch's defaults for M and
# EF_CONSTRUCTION already get there. The hybrid policy is left to RediSearch:
# forcing BATCHES lost recall@5 in the small partition.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_RUNTIME = 100

_RETURN = (
    "partition", "context", "prompt", "response", "created_at", "expires_at", "meta", "dist",
)  # fmt: skip
_REQUIRED = frozenset({"partition", "prompt", "response"})
#: What `get` reads: every field of the entry but `tokens`.
_ENTRY = (
    "partition", "context", "prompt", "response", "created_at", "expires_at", "meta", "vector",
)  # fmt: skip
_CLEAR_BATCH = 1000
_SCAN_BATCH = 500
_SIZED = ("prompt", "response", "vector", "meta", "tokens")


class RedisStore:
    """Entries in Redis hashes, searched with a RediSearch HNSW index.

    `url` is `redis://[user:password@]host:port[/db]`, `rediss://` for TLS
    (redis-py URL options such as `?ssl_cert_reqs=none` pass through).
    `timeout` bounds every command and connection attempt, in seconds.
    `ef_runtime`, `m` and `ef_construction` are the HNSW parameters; `m` and
    `ef_construction` only apply when this store creates the index.
    `hybrid_policy` forces how the partition filter meets the HNSW search
    (`"BATCHES"` or `"ADHOC_BF"`); None lets RediSearch choose per query.
    `prefix`, `index_name`, `timeout` and `ef_runtime` may also be given in
    the URL's query (`redis://host:6379/0?prefix=app1:&timeout=0.05`), which
    is where a config file that holds one URL puts them; the URL wins.
    `clients` shares redis-py clients (one pool per URL) with others that use
    the same Redis, the gateway's rate limiter; without it the store has its own.
    `clock` gives the Unix time reads compare `expires_at` with (tests advance
    one); Redis deletes expired keys by its own clock.
    `near_cache` is how many entries read by id are kept in memory between
    invalidations from Redis (0: none, every `get` reads Redis), and
    `near_cache_mb` their total size in megabytes (see the module's "Near cache").
    `token_vectors=False` (`?token_vectors=0`) stores no entry's token vectors: ~10 kB
    less per entry, for one model call whenever a verifier judges an entry that this
    process neither stored nor looked up since it started.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "reprise:",
        index_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ef_runtime: int = HNSW_EF_RUNTIME,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        hybrid_policy: str | None = None,
        clients: RedisClients | None = None,
        clock: Callable[[], float] = time.time,
        near_cache: int = DEFAULT_ENTRIES,
        near_cache_mb: float = DEFAULT_BYTES / 2**20,
        token_vectors: bool = True,
    ) -> None:
        url, options = split_url(url)
        prefix = options.get("prefix", prefix)
        if not prefix:
            raise ConfigError(
                "the Redis key prefix must not be empty: the index would cover every key"
            )
        timeout = url_timeout(options, timeout)
        try:
            self.ef_runtime = int(options.get("ef_runtime", ef_runtime))
            near_cache = int(options.get("near_cache", near_cache))
            near_cache_mb = float(options.get("near_cache_mb", near_cache_mb))
            token_vectors = _flag(options, "token_vectors", token_vectors)
        except ValueError as exc:
            raise ConfigError(f"invalid option in the Redis URL: {exc}") from exc
        self.prefix = prefix
        self.token_vectors = token_vectors
        self.index_name = options.get("index_name") or index_name or f"{prefix}idx"
        self.m = m
        self.ef_construction = ef_construction
        self.hybrid_policy = hybrid_policy
        self._clock = clock  # Unix time, for the expiry check on reads
        self._own_clients = clients is None
        self._clients = RedisClients() if clients is None else clients
        self._client: aioredis.Redis = self._clients.get(url, timeout)
        # Single commands (the lookups' HMGET and FT.SEARCH) skip redis-py's
        # per-command machinery; pipelines and the rest go through the client.
        self._direct = DirectCommands(self._client.connection_pool, timeout)
        self._near: NearCache | None = None
        if near_cache > 0 and near_cache_mb > 0:
            self._near = NearCache(
                self._client.connection_pool,
                prefix,
                max_entries=near_cache,
                max_bytes=int(near_cache_mb * 2**20),
                connect_timeout=max(timeout, 0.5),
            )
        self._dims: int | None = None
        self.evictions = 0
        self._index_ready = False
        self._backoff = _Backoff()

    async def open(self, dims: int) -> None:
        self._dims = dims
        if self._near is not None:
            self._near.start()  # it connects, and reconnects, on its own
        await self._call(self._noop)

    async def aclose(self) -> None:
        if self._near is not None:
            await self._near.aclose()
        await self._direct.aclose()  # the store's own, also with a shared client
        if self._own_clients:  # a shared client is closed by its owner
            await self._clients.aclose()

    async def get(self, entry_id: str) -> Entry | None:
        near = self._near
        if near is None:
            return await self._read(entry_id)
        entry = near.get(entry_id)
        if entry is not None:
            if _live(entry, self._clock()):
                return entry
            near.drop(entry_id)
        token = near.begin(entry_id)
        entry = None
        try:
            entry = await self._read(entry_id)
        finally:
            near.end(entry_id, token, entry)
        return entry

    async def _read(self, entry_id: str) -> Entry | None:
        key = self._key(entry_id)
        values = await self._call(lambda: self._command("HMGET", key, *_ENTRY))
        row = {name: v for name, v in zip(_ENTRY, values or (), strict=False) if v is not None}
        if not row.keys() >= _REQUIRED:  # not one of ours (a foreign key under the prefix)
            return None
        entry = _entry(entry_id, row, with_vector=True)
        return entry if _live(entry, self._clock()) else None

    async def search(
        self, vector: Vector, partition: str, *, k: int, max_distance: float, context: str = ""
    ) -> list[Match]:
        if k <= 0:
            return []
        blob = self._blob(vector)
        policy = f"HYBRID_POLICY {self.hybrid_policy} " if self.hybrid_policy else ""
        query = (
            f"(@ptag:{{{_partition_tag(partition)}}} @ctag:{{{_partition_tag(context)}}})"
            f"=>[KNN {k} @vector $vec {policy}EF_RUNTIME {self.ef_runtime} AS dist]"
        )
        args = ["PARAMS", 2, "vec", blob, "RETURN", len(_RETURN), *_RETURN]
        args += ["SORTBY", "dist", "LIMIT", 0, k, "DIALECT", 2]
        reply = await self._call(lambda: self._command("FT.SEARCH", self.index_name, query, *args))
        return _matches(parse_search(reply), self.prefix, max_distance, self._clock())

    async def upsert(self, entry: Entry) -> None:
        if not self.token_vectors:
            entry = dataclasses.replace(entry, tokens=None)
        if entry.vector is None:
            raise StoreError(f"entry {entry.id!r} has no vector")
        key = self._key(entry.id)
        mapping = _fields(entry, self._blob(entry.vector))

        async def write() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=mapping)
                if entry.tokens is None:  # none of an earlier write either
                    pipe.hdel(key, "tokens")
                if entry.expires_at is None:
                    pipe.persist(key)
                else:
                    pipe.pexpireat(key, int(entry.expires_at * 1000))
                await pipe.execute()

        self._forget(entry.id)
        try:
            await self._call(write)
        finally:
            self._forget(entry.id)
        if self._near is not None and self._near.serving:  # else no copy would be kept
            await self._read_back(entry.id)

    async def _read_back(self, entry_id: str) -> None:
        """Give the near cache a copy of what this process just wrote: read from Redis
        like any `get` (a copy taken from the write itself could be older than a
        write by another process that Redis's message has not reported yet)."""
        try:
            await self.get(entry_id)
        except StoreError as exc:  # the write went through; only the copy is missing
            logger.debug("near cache: no copy of %s after writing it: %s", entry_id, exc)

    async def stored_tokens(self, entry_ids: Sequence[str]) -> dict[str, bytes]:
        """The `tokens` fields of those of `entry_ids` that have one (`TokenStore`): one
        `HGET`, or one pipeline of them."""
        keys = [self._key(i) for i in entry_ids]
        if not keys:
            return {}

        async def read() -> list[Any]:
            if len(keys) == 1:
                return [await self._command("HGET", keys[0], "tokens")]
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(key, "tokens")
                return list(await pipe.execute())

        values = await self._call(read)
        return {i: v for i, v in zip(entry_ids, values, strict=True) if isinstance(v, bytes)}

    async def delete(self, entry_id: str) -> bool:
        self._forget(entry_id)
        try:
            return bool(await self._call(lambda: self._client.delete(self._key(entry_id))))
        finally:
            self._forget(entry_id)

    async def clear(self, partition: str | None = None) -> int:
        query = "*" if partition is None else f"@ptag:{{{_partition_tag(partition)}}}"
        removed = 0
        try:
            while deleted := await self._call(lambda: self._clear_page(query)):
                removed += deleted
        finally:
            if self._near is not None:
                self._near.clear()
        return removed

    def _forget(self, entry_id: str) -> None:
        """This process changes `entry_id`: no copy of it, without waiting for Redis to say."""
        if self._near is not None:
            self._near.drop(entry_id)

    async def _clear_page(self, query: str) -> int:
        # The index shrinks as keys go, so the first page is always the next one.
        reply = await self._command(
            "FT.SEARCH", self.index_name, query, "NOCONTENT", "LIMIT", 0, _CLEAR_BATCH,
            "DIALECT", 2,
        )  # fmt: skip
        keys = [key for key, _ in parse_search(reply)]
        return int(await self._client.unlink(*keys)) if keys else 0

    # -- operating it (`AdminStore`): a SCAN over the prefix, one pipeline per batch

    async def partition_stats(self) -> list[PartitionStats]:
        found: dict[str, list[float]] = {}  # partition -> [entries, bytes, oldest, newest]
        async for keys in self._scan():
            for row in await self._call(lambda keys=keys: self._sizes(keys)):  # type: ignore[misc]
                if row is None:
                    continue
                partition, created, size = row
                stats = found.setdefault(partition, [0, 0, created, created])
                stats[0] += 1
                stats[1] += size
                stats[2], stats[3] = min(stats[2], created), max(stats[3], created)
        info = await self._call(lambda: self._client.info("stats"))
        self.evictions = int(info.get("evicted_keys", 0))
        return [PartitionStats(p, int(n), int(b), lo, hi) for p, (n, b, lo, hi) in found.items()]

    async def entries(self, partition: str | None = None) -> AsyncIterator[Entry]:
        async for keys in self._scan():
            rows = await self._call(lambda keys=keys: self._rows(keys))  # type: ignore[misc]
            for key, row in zip(keys, rows, strict=True):
                if not row or not row.keys() >= _REQUIRED:
                    continue  # expired or evicted since the scan, or not an entry
                entry = _entry(key[len(self.prefix) :], row, with_vector=True)
                if _live(entry, self._clock()) and partition in (None, entry.partition):
                    yield entry

    async def _scan(self) -> AsyncIterator[list[str]]:
        """Batches of the hash keys under the prefix (SCAN may repeat one; each comes once)."""
        seen: set[str] = set()
        cursor: int = 0
        pattern = _glob_escape(self.prefix) + "*"
        while True:
            cursor, keys = await self._call(
                lambda cursor=cursor: self._client.scan(  # type: ignore[misc]
                    cursor, match=pattern, count=_SCAN_BATCH, _type="HASH"
                )
            )
            fresh = [k for k in map(_str, keys) if k not in seen]
            seen.update(fresh)
            if fresh:
                yield fresh
            if cursor == 0:
                return

    async def _rows(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return [_pairs(row) if row else {} for row in await pipe.execute()]

    async def _sizes(self, keys: Sequence[str]) -> list[tuple[str, float, int] | None]:
        """(partition, created_at, bytes) of each key, None where it is no live entry."""
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, ["partition", "created_at", "expires_at"])
                for name in _SIZED:
                    pipe.hstrlen(key, name)
            replies = await pipe.execute()
        out: list[tuple[str, float, int] | None] = []
        step = 1 + len(_SIZED)
        now = self._clock()
        for i in range(0, len(replies), step):
            (partition, created, expires), sizes = replies[i], replies[i + 1 : i + step]
            live = partition is not None and (not expires or float(expires) > now)
            out.append((partition.decode(), float(created or 0), sum(sizes)) if live else None)
        return out

    def _key(self, entry_id: str) -> str:
        return self.prefix + entry_id

    def _blob(self, vector: Vector) -> bytes:
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self._dims,):
            raise StoreError(f"vector of shape {array.shape}, the index holds ({self._dims},)")
        return array.tobytes()

    async def _command(self, *args: Any) -> Any:
        """One command's raw reply (RESP2 or RESP3, as parsed by `_pairs` and `parse_search`)."""
        return await self._direct.execute(*args)

    async def _noop(self) -> None:
        return None

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` once the index exists, mapping Redis errors to StoreError."""
        probe = self._backoff.admit()
        try:
            if not self._index_ready:
                await self._ensure_index()
            try:
                result = await operation()
            except ResponseError as exc:
                if not _is_missing_index(exc):
                    raise
                # Redis restarted without persistence under live connections.
                self._index_ready = False
                await self._ensure_index()
                result = await operation()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._index_ready = False  # the server may come back without the index
            self._backoff.failed()
            raise StoreUnavailable(f"redis unreachable: {exc}") from exc
        except RedisError as exc:
            self._backoff.succeeded()
            raise StoreError(f"redis error: {exc}") from exc
        finally:
            if probe:  # also when cancelled by the caller's deadline: free the slot
                self._backoff.release()
        self._backoff.succeeded()
        return result

    async def _ensure_index(self) -> None:
        if self._dims is None:
            raise StoreError("RedisStore.open(dims) must be called first")
        for _ in range(3):  # another replica may be dropping or creating it meanwhile
            try:
                await self._create_index(self._dims)
                break
            except ResponseError as exc:
                if "already exists" not in str(exc).lower():
                    raise
            info = await self._command("FT.INFO", self.index_name)
            check_index(self.index_name, self.prefix, self._dims, info)
            if _mentions(info, "ctag"):
                break
            await self._drop_old_layout(info)
        else:
            raise StoreError(f"Redis index {self.index_name!r} kept changing while opening it")
        self._index_ready = True

    async def _create_index(self, dims: int) -> None:
        await self._client.ft(self.index_name).create_index(
            [TagField("ptag"), TagField("ctag"), self._vector_field(dims)],
            definition=IndexDefinition(  # type: ignore[no-untyped-call]
                prefix=[self.prefix], index_type=IndexType.HASH
            ),
        )

    async def _drop_old_layout(self, info: Any) -> None:
        """Drop an index of key layout 1 and its entries: they must never be served."""
        count = _find(_pairs(info), ("num_docs",))
        try:
            await self._command("FT.DROPINDEX", self.index_name, "DD")
        except ResponseError as exc:
            if not _is_missing_index(exc):
                raise
            return  # another replica dropped it first
        logger.warning(
            "dropped Redis index %r and its %s cached entries of key layout 1: the key layout "
            "changed to %d (requests are keyed by their question and an exact context now), "
            "so old entries could answer the wrong requests",
            self.index_name, _str(count) if count is not None else "?", KEY_LAYOUT,
        )  # fmt: skip

    def _vector_field(self, dims: int) -> VectorField:
        params = {"TYPE": "FLOAT32", "DIM": dims, "DISTANCE_METRIC": "COSINE", "M": self.m}
        params["EF_CONSTRUCTION"] = self.ef_construction
        return VectorField("vector", "HNSW", params)


class _Backoff:
    """Fail fast for a while after Redis failed, then let one call at a time probe it."""

    def __init__(self, first: float = 0.25, cap: float = 2.0) -> None:
        self._first, self._cap = first, cap
        self._delay = 0.0
        self._retry_at = 0.0
        self._probing = False

    def admit(self) -> bool:
        """Raise StoreUnavailable during an outage's window; True if this call is the probe."""
        if not self._delay:
            return False
        wait = self._retry_at - time.monotonic()
        if wait > 0 or self._probing:
            raise StoreUnavailable(f"redis unreachable; next attempt in {max(wait, 0):.2f}s")
        self._probing = True
        return True

    def failed(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:  # calls in flight when the outage began: one failure
            return
        self._delay = min(self._cap, self._delay * 2 or self._first)
        self._retry_at = now + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0

    def release(self) -> None:
        self._probing = False


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _partition_tag(partition: str) -> str:
    return hashlib.sha256(partition.encode()).hexdigest()[:32]


def _flag(options: dict[str, str], name: str, default: bool) -> bool:
    """A URL option's yes or no ("1"/"0", "true"/"false", "on"/"off")."""
    value = options.get(name)
    if value is None:
        return default
    found = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}
    if value.lower() not in found:
        raise ValueError(f"{name} must be 0 or 1, not {value!r}")
    return found[value.lower()]


def _fields(entry: Entry, blob: bytes) -> dict[EncodableT, EncodableT]:
    fields: dict[EncodableT, EncodableT] = {
        "ptag": _partition_tag(entry.partition),
        "ctag": _partition_tag(entry.context),
        "partition": entry.partition,
        "context": entry.context,
        "prompt": entry.prompt,
        "response": entry.response,
        "created_at": repr(entry.created_at),
        "expires_at": "" if entry.expires_at is None else repr(entry.expires_at),
        "meta": json.dumps(dict(entry.meta), ensure_ascii=False),
        "vector": blob,
    }
    if entry.tokens is not None:
        fields["tokens"] = entry.tokens
    return fields


def _entry(entry_id: str, row: Mapping[str, bytes], *, with_vector: bool) -> Entry:
    expires = row.get("expires_at", b"").decode()
    vector = row.get("vector")
    return Entry(
        id=entry_id,
        partition=row["partition"].decode(),
        prompt=row["prompt"].decode(),
        response=row["response"].decode(),
        vector=np.frombuffer(vector, dtype=np.float32).copy() if with_vector and vector else None,
        created_at=float(row.get("created_at", b"0")),
        expires_at=float(expires) if expires else None,
        meta=json.loads(row.get("meta", b"{}")),
        context=row.get("context", b"").decode(),
    )


def _live(entry: Entry, now: float) -> bool:
    return entry.expires_at is None or entry.expires_at > now


def _matches(
    rows: Sequence[tuple[bytes, dict[str, bytes]]], prefix: str, max_distance: float, now: float
) -> list[Match]:
    out: list[Match] = []
    for key, row in rows:
        if not row.keys() >= _REQUIRED:  # the key vanished (expired) between index and read
            continue
        distance = max(0.0, float(row["dist"]))
        if distance > max_distance:  # KNN's nearest k, most of them usually too far
            continue
        entry = _entry(key.decode()[len(prefix) :], row, with_vector=False)
        if _live(entry, now):
            out.append(Match(entry, distance))
    out.sort(key=lambda m: m.distance)
    return out


def parse_search(reply: Any) -> list[tuple[bytes, dict[str, bytes]]]:
    """The (key, fields) rows of an FT.SEARCH reply, in RESP2 or RESP3 form."""
    if isinstance(reply, dict):  # RESP3: {results: [{id, extra_attributes}, ...]}
        results = _get(reply, "results") or []
        return [
            (_get(r, "id"), {_str(k): v for k, v in (_get(r, "extra_attributes") or {}).items()})
            for r in results
        ]
    # RESP2: [total, key, [field, value, ...], key, ...]; NOCONTENT leaves the lists out.
    items = list(reply[1:])
    if items and all(isinstance(item, bytes) for item in items):
        return [(key, {}) for key in items]
    return [(items[i], _pairs(items[i + 1])) for i in range(0, len(items), 2)]


def check_index(name: str, prefix: str, dims: int, info: Any) -> None:
    """Raise `IndexMismatch` unless the FT.INFO reply fits `dims`-dim COSINE FLOAT32 vectors."""
    info = _pairs(info)
    found = {
        "DIM": _find(info, ("dim", "dimensions")),
        "DISTANCE_METRIC": _str(_find(info, ("distance_metric",)) or "?").upper(),
        "TYPE": _str(_find(info, ("data_type", "type_of_vector")) or "FLOAT32").upper(),
    }
    wanted = {"DIM": dims, "DISTANCE_METRIC": "COSINE", "TYPE": "FLOAT32"}
    prefixes = [_str(p) for p in (_find(info, ("prefixes",)) or [])]
    if found["DIM"] is not None:
        found["DIM"] = int(found["DIM"])
    if found != wanted or prefixes not in ([prefix], []):
        raise IndexMismatch(
            f"Redis index {name!r} exists with vector {found}, prefixes {prefixes}; "
            f"this embedder needs {wanted} under prefix {prefix!r}. It was not changed: "
            "use another prefix and index name, or drop it yourself "
            f"(FT.DROPINDEX {name} DD); see README, 'Production: Redis'."
        )


def _mentions(value: Any, name: str) -> bool:
    """Whether `name` appears as a value anywhere in a nested FT.INFO reply."""
    if isinstance(value, bytes | str):
        return _str(value) == name
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    return isinstance(value, list) and any(_mentions(item, name) for item in value)


def _is_missing_index(exc: ResponseError) -> bool:
    text = str(exc).lower()
    return "no such index" in text or "unknown index name" in text


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _get(mapping: Mapping[Any, Any], name: str) -> Any:
    return mapping.get(name.encode(), mapping.get(name))


def _pairs(value: Any) -> dict[str, Any]:
    """A RESP3 map, or a RESP2 flat [key, value, ...] list, as a dict with str keys."""
    if isinstance(value, dict):
        return {_str(k): v for k, v in value.items()}
    return {_str(value[i]): value[i + 1] for i in range(0, len(value) - 1, 2)}


def _find(value: Any, names: Sequence[str]) -> Any:
    """The first value under any of `names` in a nested FT.INFO reply, depth first.

    FT.INFO nests differently across RESP2/RESP3 and RediSearch/valkey-search,
    so the vector attribute's settings are found by name wherever they sit.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if _str(key).lower() in names:
                return item
        value = list(value.values())
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, bytes | str) and _str(item).lower() in names and i + 1 < len(value):
                return value[i + 1]
            found = _find(item, names)
            if found is not None:
                return found
    return None
