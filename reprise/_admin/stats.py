"""A store's contents summed up: entries, bytes, ages and evictions, per partition."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from reprise._protocols import AdminStore, PartitionStats, VectorStore


def digest(partition: str) -> str:
    """How a partition is shown without its name (also the Redis store's tag of it)."""
    return hashlib.sha256(partition.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StoreStats:
    partitions: list[PartitionStats]
    evictions: int

    @property
    def entries(self) -> int:
        return sum(p.entries for p in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)

    def as_json(self) -> dict[str, Any]:
        oldest = [p.oldest for p in self.partitions if p.oldest is not None]
        newest = [p.newest for p in self.partitions if p.newest is not None]
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "evictions": self.evictions,
            "oldest": min(oldest, default=None),
            "newest": max(newest, default=None),
        }


def admin_store(store: VectorStore) -> AdminStore:
    """The store as an `AdminStore`, or a `TypeError` naming what it lacks."""
    if not isinstance(store, AdminStore):
        raise TypeError(
            f"{type(store).__name__} cannot be operated: it has no partition_stats/entries"
        )
    return store


async def store_stats(store: VectorStore) -> StoreStats:
    operated = admin_store(store)
    partitions = await operated.partition_stats()
    partitions.sort(key=lambda p: (-p.entries, p.partition))
    return StoreStats(partitions, operated.evictions)


def partition_json(stats: PartitionStats, *, names: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"partition": digest(stats.partition)}
    if names:
        shown["name"] = stats.partition
    return {
        **shown,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "oldest": stats.oldest,
        "newest": stats.newest,
    }
