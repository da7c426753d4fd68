"""In-memory vector indexes for one partition: exact while small, HNSW once large.

Both speak integer labels (never entry ids) and report cosine distance
`1 - dot`, which is exact for the L2-normalised vectors the cache stores.
Brute force is exact and cheaper than a graph walk for small partitions;
past `HNSWParams.threshold` entries a usearch HNSW graph takes over.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

import reprise._native  # noqa: F401  (before usearch: see there)

# isort: split
from usearch.index import Index

from reprise._protocols import Vector

Labels = npt.NDArray[np.int64]
Distances = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class HNSWParams:
    """When to switch to HNSW and how to build it (see benchmarks/store.md for the figures)."""

    threshold: int = 10_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128


DEFAULTS = HNSWParams()
BLOCK = 1024


class _Index(Protocol):
    def __len__(self) -> int: ...
    def add(self, labels: Labels, vectors: Vector) -> None: ...
    def remove(self, label: int) -> None: ...
    def search(self, vector: Vector, count: int) -> tuple[Labels, Distances]: ...
    def labels(self) -> Labels: ...


class ExactIndex:
    """Brute-force search over a packed matrix; deletes swap the last row in."""

    def __init__(self, dims: int, capacity: int = 64) -> None:
        self._vectors = np.empty((capacity, dims), dtype=np.float32)
        self._labels = np.empty(capacity, dtype=np.int64)
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._row)

    def add(self, labels: Labels, vectors: Vector) -> None:
        n, extra = len(self._row), len(labels)
        if n + extra > len(self._labels):
            capacity = max(2 * len(self._labels), n + extra)
            self._vectors = np.resize(self._vectors, (capacity, self._vectors.shape[1]))
            self._labels = np.resize(self._labels, capacity)
        self._vectors[n : n + extra] = vectors
        self._labels[n : n + extra] = labels
        for i, label in enumerate(labels.tolist()):
            self._row[label] = n + i

    def remove(self, label: int) -> None:
        row = self._row.pop(label, None)
        if row is None:
            return
        last = len(self._row)
        if row != last:
            moved = int(self._labels[last])
            self._vectors[row] = self._vectors[last]
            self._labels[row] = moved
            self._row[moved] = row

    def search(self, vector: Vector, count: int) -> tuple[Labels, Distances]:
        n = len(self._row)
        distances = np.empty(n, dtype=np.float32)
        # Blocks small enough that OpenBLAS stays on this thread: its worker threads
        # spin, and on a busy machine one multi-threaded matvec took 20-30 ms at p99
        # (benchmarks/store.md); one block is a few microseconds of work.
        for start in range(0, n, BLOCK):
            np.dot(
                self._vectors[start : min(n, start + BLOCK)],
                vector,
                out=distances[start : start + BLOCK],
            )
        np.subtract(1.0, distances, out=distances)
        # The arrays' own methods: numpy's module functions add a wrapper per call.
        nearest = distances.argpartition(count - 1)[:count] if count < n else np.arange(n)
        found = distances[nearest]
        order = found.argsort(kind="stable")
        return self._labels[nearest[order]], found[order]

    def labels(self) -> Labels:
        return self._labels[: len(self._row)].copy()

    def items(self) -> tuple[Labels, Vector]:
        n = len(self._row)
        return self._labels[:n].copy(), self._vectors[:n].copy()


class HNSWIndex:
    """A usearch HNSW graph with inner-product distance (cosine for unit vectors)."""

    def __init__(self, dims: int, params: HNSWParams) -> None:
        self._index = Index(
            ndim=dims,
            metric="ip",
            dtype="f32",
            connectivity=params.connectivity,
            expansion_add=params.expansion_add,
            expansion_search=params.expansion_search,
        )

    @classmethod
    def load(cls, path: Path, dims: int, params: HNSWParams) -> HNSWIndex | None:
        """The graph saved at `path`, or None if it was built for other vectors."""
        hnsw = cls(dims, params)
        hnsw._index.load(str(path))
        if hnsw._index.ndim != dims or hnsw._index.connectivity != params.connectivity:
            return None
        return hnsw

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    def labels(self) -> Labels:
        return np.asarray(self._index.keys, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, labels: Labels, vectors: Vector) -> None:
        # One vector at a time is a short graph insert; bulk loads use every core.
        self._index.add(labels.astype(np.uint64), vectors, threads=1 if len(labels) < 64 else 0)

    def remove(self, label: int) -> None:
        self._index.remove(label)

    def search(self, vector: Vector, count: int) -> tuple[Labels, Distances]:
        found = self._index.search(vector, count, threads=1)
        return found.keys.astype(np.int64), found.distances


class PartitionIndex:
    """The index of one partition: exact search until it outgrows `params.threshold`.

    The HNSW graph is built in a worker thread from a snapshot while the exact
    index keeps serving; writes made meanwhile are journaled and replayed, so
    an upgrade never blocks the event loop and never loses an entry.
    """

    def __init__(self, dims: int, params: HNSWParams, expected: int = 0) -> None:
        """`expected`: how many entries are about to be loaded, so that a large
        partition is built as HNSW from the start instead of copied into one."""
        self.dims = dims
        self.params = params
        self._impl: _Index = (
            HNSWIndex(dims, params)
            if expected > params.threshold
            # Small to start: a conversation's context is an index of its own,
            # and most hold one or two entries (capacity doubles as they grow).
            else ExactIndex(dims, max(4, expected))
        )
        self._journal: list[tuple[Labels, Vector | None]] | None = None

    def __len__(self) -> int:
        return len(self._impl)

    @classmethod
    def restored(cls, hnsw: HNSWIndex, dims: int, params: HNSWParams) -> PartitionIndex:
        index = cls(dims, params)
        index._impl = hnsw
        return index

    @property
    def hnsw(self) -> HNSWIndex | None:
        """The graph, once this partition has one (what is worth saving at close)."""
        return self._impl if isinstance(self._impl, HNSWIndex) else None

    @property
    def is_ann(self) -> bool:
        return isinstance(self._impl, HNSWIndex)

    def add(self, labels: Labels, vectors: Vector) -> None:
        self._impl.add(labels, vectors)
        if self._journal is not None:
            self._journal.append((labels, vectors))

    def remove(self, label: int) -> None:
        self._impl.remove(label)
        if self._journal is not None:
            self._journal.append((np.array([label], dtype=np.int64), None))

    def search(self, vector: Vector, count: int) -> tuple[Labels, Distances]:
        return self._impl.search(vector, count)

    def labels(self) -> Labels:
        return self._impl.labels()

    def wants_upgrade(self) -> bool:
        return self._journal is None and not self.is_ann and len(self) > self.params.threshold

    def build_now(self) -> None:
        """Switch to HNSW at once, on the caller's thread (for tiny partitions)."""
        if isinstance(self._impl, ExactIndex) and len(self) > self.params.threshold:
            self._impl = self._build(*self._impl.items())

    async def upgrade(self) -> None:
        """Build the HNSW graph off the event loop, then swap it in."""
        if not isinstance(self._impl, ExactIndex) or self._journal is not None:
            return
        self._journal = []
        try:
            hnsw = await asyncio.to_thread(self._build, *self._impl.items())
            for labels, vectors in self._journal:
                if vectors is None:
                    hnsw.remove(int(labels[0]))
                else:
                    hnsw.add(labels, vectors)
            self._impl = hnsw
        finally:
            self._journal = None

    def _build(self, labels: Labels, vectors: Vector) -> HNSWIndex:
        hnsw = HNSWIndex(self.dims, self.params)
        hnsw.add(labels, vectors)
        return hnsw
