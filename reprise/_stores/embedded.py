"""The default store: entries in SQLite on disk, vectors searched in memory.

    SQLite (WAL)        every entry, the source of truth; one worker thread does all its I/O
    row map             id -> (label, partition, context, expires_at) per live entry, in memory
    indexes             one per (partition, context): exact numpy search, HNSW once large
    hot entries         an LRU of recently read or written entries (without token vectors)

The row map is kept in recency order (least recently used first): with
`max_entries` or `max_bytes` set, an upsert that goes over evicts from its
front, from the row map, the index and SQLite alike. When each entry was
last used is written back to SQLite in batches (`last_used`), so that the
order, and so eviction, survives a restart.

`get` of an unknown id answers from the row map alone; a hot entry needs no I/O
either. Searching is pure numpy / usearch on the event loop (about a millisecond,
see benchmarks/store.md); only the few matches within
`max_distance` are read from SQLite. Prompts and responses never sit in
memory beyond the hot LRU, so a million entries cost their vectors plus
about 200 bytes each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from reprise._exceptions import StoreError, StoreUnavailable
from reprise._protocols import KEY_LAYOUT, Entry, Match, PartitionStats, Vector
from reprise._stores._index import DEFAULTS, HNSWIndex, HNSWParams, Labels, PartitionIndex
from reprise._stores._saved import SavedGraphs
from reprise._stores._sqlite import Database

T = TypeVar("T")

#: float32 dot products of equal unit vectors land within this of 0; an identical
#: prompt must still be found at `max_distance=0`.
ROUNDING = 1e-6
#: Recency updates kept in memory before they are written to SQLite in one transaction.
TOUCH_BATCH = 512
EXPORT_PAGE = 256
logger = logging.getLogger("reprise.store")


#: An index's name: the partition and the exact context its entries share.
IndexKey = tuple[str, str]


class _Row(NamedTuple):
    label: int
    name: IndexKey
    expires_at: float | None
    size: int


def entry_size(entry: Entry, meta: str) -> int:
    """The bytes an entry weighs against `max_bytes`: prompt, response, vector, meta and
    stored token vectors."""
    vector = 0 if entry.vector is None else np.asarray(entry.vector, dtype=np.float32).nbytes
    size = len(entry.prompt.encode()) + len(entry.response.encode()) + vector
    return size + len(meta.encode()) + len(entry.tokens or b"")


def _expired(row: _Row, now: float) -> bool:
    return row.expires_at is not None and row.expires_at <= now


class EmbeddedStore:
    """A `VectorStore` in one data directory (`cache.sqlite3` inside), or `":memory:"`.

    `ann_threshold` is the partition size above which HNSW replaces exact
    search; `purge_interval` is how often, in seconds, expired rows are
    deleted from disk (they are never returned in between). `clock` gives the
    Unix time entries expire by (tests advance one). `max_entries` and
    `max_bytes` (see `entry_size`) bound the store: past either, the least
    recently used entries are evicted; None leaves it unbounded.
    """

    def __init__(
        self,
        path: str | Path = "./reprise-data",
        *,
        ann_threshold: int = DEFAULTS.threshold,
        connectivity: int = DEFAULTS.connectivity,
        expansion_search: int = DEFAULTS.expansion_search,
        expansion_add: int = DEFAULTS.expansion_add,
        hot_entries: int = 4096,
        purge_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        max_entries: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        for name, bound in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if bound is not None and bound < 1:
                raise ValueError(f"{name} must be at least 1, got {bound}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.evictions = 0
        self.bytes = 0
        self.path = str(path)
        self.params = HNSWParams(ann_threshold, connectivity, expansion_add, expansion_search)
        self.hot_entries = hot_entries
        self.purge_interval = purge_interval
        self._clock = clock  # Unix time, which `expires_at` is compared with
        self.dims = 0
        self._db = Database(self.path)
        self._saved = None if self.path == ":memory:" else SavedGraphs(Path(self.path) / "ann")
        self._executor: ThreadPoolExecutor | None = None
        self._rows: dict[str, _Row] = {}  # least recently used first
        self._used: dict[str, float] = {}  # recency not yet written to SQLite
        self._counts: dict[str, list[int]] = {}  # partition -> [entries, bytes]
        self._ids: dict[int, str] = {}
        self._partitions: dict[IndexKey, PartitionIndex] = {}
        self._hot: OrderedDict[str, Entry] = OrderedDict()
        self._next_label = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = False  # a half-loaded index must never be saved as the truth

    def __repr__(self) -> str:
        return f"EmbeddedStore({self.path!r}, entries={len(self._rows)})"

    async def open(self, dims: int) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="reprise-sqlite")
        self.dims = dims
        try:
            self._next_label = await self._run(self._db.open, dims)
            dropped = await self._run(self._db.migrate, KEY_LAYOUT)
            if dropped is not None:
                logger.warning(
                    "dropped %d cached entries of key layout %s at %r: the key layout changed "
                    "to %d (requests are keyed by their question and an exact context now), "
                    "so old entries could answer the wrong requests",
                    dropped.count, dropped.layout, self.path, KEY_LAYOUT,
                )  # fmt: skip
            await self._run(self._load, self._clock())
            self._loaded = True
            await self._evict()  # a bound lowered since the last run
        except BaseException:
            await self.aclose()
            raise
        self._spawn(self._purge_forever())

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            try:
                await self._flush_recency()
                await self._save_graphs()
            finally:
                await self._run(self._db.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._loaded = False
        self._forget_everything()

    async def get(self, entry_id: str) -> Entry | None:
        self._require_open()
        row = self._rows.get(entry_id)
        if row is None:
            return None
        if _expired(row, self._clock()):
            self._forget(entry_id)
            return None
        self._touch([entry_id])
        return (await self._entries([entry_id])).get(entry_id)

    async def search(
        self, vector: Vector, partition: str, *, k: int, max_distance: float, context: str = ""
    ) -> list[Match]:
        self._require_open()
        index = self._partitions.get((partition, context))
        if index is None or k <= 0:
            return []
        found = self._nearest(index, self._check(vector), k, max_distance)
        self._touch([entry_id for entry_id, _ in found])
        entries = await self._entries([entry_id for entry_id, _ in found])
        return [Match(entries[i], d) for i, d in found if i in entries]

    async def upsert(self, entry: Entry) -> None:
        self._require_open()
        if entry.vector is None:
            raise StoreError(f"entry {entry.id!r} has no vector")
        vector = self._check(entry.vector).copy()
        if entry.expires_at is not None and entry.expires_at <= self._clock():
            await self.delete(entry.id)  # dead on arrival: it replaces, and is, nothing
            return
        try:
            meta = json.dumps(dict(entry.meta), separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"entry {entry.id!r}: meta must be JSON-serialisable: {exc}") from exc
        label = self._next_label
        self._next_label += 1
        size = entry_size(entry, meta)
        old = self._rows.get(entry.id)
        victims = self._victims(
            len(self._rows) + (old is None), self.bytes + size - (old.size if old else 0), entry.id
        )
        # One SQLite transaction writes the entry and deletes what it pushes out.
        await self._run(
            self._db.upsert, entry, label, vector.tobytes(), meta, self._clock(), victims
        )
        self._evicted(victims)
        self._forget(entry.id)
        key = (entry.partition, entry.context)
        index = self._partitions.get(key)
        if index is None:
            index = self._partitions[key] = PartitionIndex(self.dims, self.params)
        index.add(np.array([label], dtype=np.int64), vector[None, :])
        self._rows[entry.id] = _Row(label, key, entry.expires_at, size)
        self._count(entry.partition, 1, size)
        self._ids[label] = entry.id
        # Without its token vectors: they are read only for a search's candidates, apart.
        hot = dataclasses.replace(entry, vector=vector, meta=json.loads(meta), tokens=None)
        self._remember(hot)
        if index.wants_upgrade():
            # A tiny graph (a test's low threshold) builds in microseconds; only a
            # real one is worth a thread and the journal.
            if len(index) <= 256:
                index.build_now()
            else:
                self._spawn(index.upgrade())

    async def stored_tokens(self, entry_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored token vectors of those of `entry_ids` that are live and have them
        (`TokenStore`: one SQLite read, apart from `get` and `search`)."""
        self._require_open()
        now = self._clock()
        rows = [(i, self._rows.get(i)) for i in entry_ids]
        live = [i for i, row in rows if row is not None and not _expired(row, now)]
        return await self._run(self._db.stored_tokens, live) if live else {}

    async def delete(self, entry_id: str) -> bool:
        row = self._rows.get(entry_id)
        await self._run(self._db.delete, entry_id)
        self._forget(entry_id)
        return row is not None and not _expired(row, self._clock())

    async def clear(self, partition: str | None = None) -> int:
        count = await self._run(self._db.clear, partition, self._clock())
        if partition is None:
            self._forget_everything()
        else:
            for key in [key for key in self._partitions if key[0] == partition]:
                labels = self._partitions[key].labels().tolist()
                for entry_id in [self._ids[label] for label in labels]:
                    self._forget(entry_id)
        return count

    # -- operating it (`AdminStore`) ----------------------------------------------------

    async def partition_stats(self) -> list[PartitionStats]:
        """Counts from memory; ages from an index (expired rows not yet purged count)."""
        ages = await self._run(self._db.partition_ages)
        return [
            PartitionStats(name, n, size, *ages.get(name, (None, None)))
            for name, (n, size) in self._counts.items()
        ]

    async def entries(self, partition: str | None = None) -> AsyncIterator[Entry]:
        """Live entries page by page (one SQLite read each), so an export streams."""
        after = 0
        while page := await self._run(self._db.page, partition, self._clock(), after, EXPORT_PAGE):
            for _, entry in page:
                if entry.id in self._rows:
                    yield entry
            after = page[-1][0]

    # -- bounded size ---------------------------------------------------------------------

    def _over(self, entries: int, size: int) -> bool:
        return (self.max_entries is not None and entries > self.max_entries) or (
            self.max_bytes is not None and size > self.max_bytes
        )

    def _victims(self, entries: int, size: int, keep: str) -> list[str]:
        """The least recently used entries to drop so that `entries` weighing `size` fit
        the bounds (never `keep`, the entry being written)."""
        victims: list[str] = []
        for entry_id, row in self._rows.items():  # least recently used first
            if not self._over(entries, size):
                break
            if entry_id != keep:
                victims.append(entry_id)
                entries, size = entries - 1, size - row.size
        return victims

    def _evicted(self, victims: list[str]) -> None:
        for entry_id in victims:
            if entry_id in self._rows:  # another upsert may have evicted it meanwhile
                self.evictions += 1
                self._forget(entry_id)
                self._used.pop(entry_id, None)

    async def _evict(self) -> None:
        """Drop least recently used entries until within the bounds."""
        victims = self._victims(len(self._rows), self.bytes, keep="")
        if victims:
            await self._run(self._db.delete_many, victims)
            self._evicted(victims)

    def _touch(self, ids: Sequence[str]) -> None:
        """Move used entries to the back of the recency order; persisted in batches."""
        if self.max_entries is None and self.max_bytes is None:
            return  # no order to keep: the hit path stays as cheap as it was
        now = self._clock()
        for entry_id in ids:
            row = self._rows.pop(entry_id, None)
            if row is not None:
                self._rows[entry_id] = row
                self._used[entry_id] = now
        if len(self._used) >= TOUCH_BATCH:
            self._spawn(self._flush_recency())

    async def _flush_recency(self) -> None:
        used, self._used = self._used, {}
        if used:
            await self._run(self._db.touch, [(t, i) for i, t in used.items()])

    # -- internals ---------------------------------------------------------------------

    def _nearest(
        self, index: PartitionIndex, vector: Vector, k: int, max_distance: float
    ) -> list[tuple[str, float]]:
        """Up to k live (id, distance) within max_distance; asks for more if some expired."""
        now, count = self._clock(), k
        while True:
            labels, distances = index.search(vector, count)
            found: list[tuple[str, float]] = []
            stale: list[str] = []
            for label, distance in zip(labels.tolist(), distances.tolist(), strict=True):
                if distance > max_distance + ROUNDING or len(found) == k:
                    break
                entry_id = self._ids[label]
                if _expired(self._rows[entry_id], now):
                    stale.append(entry_id)
                else:
                    found.append((entry_id, max(distance, 0.0)))
            for entry_id in stale:
                self._forget(entry_id)
            exhausted = len(labels) < count or distances[-1] > max_distance + ROUNDING
            if len(found) == k or exhausted or not stale:
                return found
            count *= 2

    async def _entries(self, ids: Sequence[str]) -> dict[str, Entry]:
        """The entries for `ids`, from the hot LRU or else one SQLite read."""
        out: dict[str, Entry] = {}
        for entry_id in ids:
            if (entry := self._hot.get(entry_id)) is not None:
                self._hot.move_to_end(entry_id)
                out[entry_id] = entry
        missing = [i for i in ids if i not in out]
        if missing:
            fetched = await self._run(self._db.fetch, missing)
            for entry_id, entry in fetched.items():
                if entry_id in self._rows:  # not deleted while we were reading
                    self._remember(entry)
                    out[entry_id] = entry
        return out

    def _remember(self, entry: Entry) -> None:
        if self.hot_entries <= 0:
            return
        self._hot[entry.id] = entry
        self._hot.move_to_end(entry.id)
        if len(self._hot) > self.hot_entries:
            self._hot.popitem(last=False)

    def _forget(self, entry_id: str) -> None:
        row = self._rows.pop(entry_id, None)
        self._hot.pop(entry_id, None)
        if row is None:
            return
        self._count(row.name[0], -1, -row.size)
        del self._ids[row.label]
        index = self._partitions[row.name]
        index.remove(row.label)
        if len(index) == 0:
            del self._partitions[row.name]

    def _count(self, partition: str, entries: int, size: int) -> None:
        counts = self._counts.setdefault(partition, [0, 0])
        counts[0] += entries
        counts[1] += size
        self.bytes += size
        if counts[0] == 0:
            del self._counts[partition]

    def _forget_everything(self) -> None:
        self.bytes = 0
        self._counts.clear()
        self._used.clear()
        self._rows.clear()
        self._ids.clear()
        self._partitions.clear()
        self._hot.clear()

    def _load(self, now: float) -> None:
        """Rebuild the row map and indexes from the live rows (on the worker thread)."""
        sizes = self._db.index_sizes(now)
        keys = {key: key for key in sizes}  # one tuple per index, not one per row
        saved = self._restore_graphs(sizes)
        restored: dict[IndexKey, list[int]] = {key: [] for key in saved}
        self._partitions = {k: PartitionIndex(self.dims, self.params, sizes[k]) for k in sizes}
        self._partitions.update(saved)
        recency: list[tuple[float, str]] = []
        for chunk in self._db.live_rows(now, skip=list(saved)):
            keep = [i for i, blob in enumerate(chunk.vectors) if blob is not None]
            if keep:
                blobs = b"".join(chunk.vectors[i] or b"" for i in keep)
                vectors = np.frombuffer(blobs, dtype=np.float32).reshape(-1, self.dims)
                labels = np.asarray(chunk.labels, dtype=np.int64)[keep]
                rows_of: dict[IndexKey, list[int]] = {}
                for row, i in enumerate(keep):
                    rows_of.setdefault(chunk.indexes[i], []).append(row)
                for key, rows in rows_of.items():
                    self._partitions[key].add(labels[rows], vectors[rows])
            for label, entry_id, key, expires, size, used in zip(
                chunk.labels,
                chunk.ids,
                chunk.indexes,
                chunk.expires,
                chunk.sizes,
                chunk.used,
                strict=True,
            ):
                self._rows[entry_id] = _Row(label, keys[key], expires, size)
                self._count(key[0], 1, size)
                recency.append((used, entry_id))
                self._ids[label] = entry_id
                if key in restored:
                    restored[key].append(label)
        for key, found in restored.items():
            self._reconcile(key, np.asarray(found, dtype=np.int64), now)
        recency.sort()
        self._rows = {entry_id: self._rows[entry_id] for _, entry_id in recency}

    def _restore_graphs(self, sizes: dict[IndexKey, int]) -> dict[IndexKey, PartitionIndex]:
        """The indexes whose graph was saved at the last clean close, loaded."""
        files = self._saved.take(self._db) if self._saved is not None else {}
        out: dict[IndexKey, PartitionIndex] = {}
        for name, path in files.items():
            if sizes.get(name, 0) <= self.params.threshold:
                continue
            try:
                graph = HNSWIndex.load(path, self.dims, self.params)
            except (OSError, RuntimeError) as exc:
                logger.warning("cannot load the saved graph %s, rebuilding: %s", path, exc)
                continue
            if graph is not None:
                out[name] = PartitionIndex.restored(graph, self.dims, self.params)
        return out

    def _reconcile(self, name: IndexKey, labels: Labels, now: float) -> None:
        """Make a loaded graph hold exactly the live rows, or rebuild it from SQLite."""
        index = self._partitions[name]
        graph = index.hnsw
        assert graph is not None
        for label in np.setdiff1d(graph.labels(), labels).tolist():
            index.remove(label)  # expired since the graph was saved
        if len(index) == len(labels):
            return
        logger.warning("the saved graph of partition %r disagrees with SQLite; rebuilding", name[0])
        index = self._partitions[name] = PartitionIndex(self.dims, self.params, len(labels))
        found, blobs = self._db.index_vectors(name, now)
        index.add(
            np.asarray(found, dtype=np.int64),
            np.frombuffer(blobs, dtype=np.float32).reshape(-1, self.dims),
        )

    async def _save_graphs(self) -> None:
        graphs = {n: i.hnsw for n, i in self._partitions.items() if i.hnsw is not None}
        if self._saved is not None and self._loaded and graphs:
            await self._run(self._saved.save, self._db, graphs)

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.purge_interval)
            try:
                await self._flush_recency()
                purged = await self._run(self._db.purge, self._clock())
            except StoreError as exc:
                logger.warning("purging expired entries failed, will retry: %s", exc)
                continue
            now = self._clock()
            for entry_id in purged:
                row = self._rows.get(entry_id)
                if row is not None and _expired(row, now):
                    self._forget(entry_id)

    def _require_open(self) -> None:
        if self._executor is None:
            raise StoreUnavailable(f"the store at {self.path!r} is not open")

    def _check(self, vector: Vector) -> Vector:
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.dims,):
            raise StoreError(f"expected a vector of shape ({self.dims},), got {vector.shape}")
        return vector

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        self._require_open()
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except (sqlite3.OperationalError, OSError) as exc:
            raise StoreUnavailable(f"SQLite store at {self.path!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store at {self.path!r}: {exc}") from exc
