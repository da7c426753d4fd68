"""Entries of the old key layout (one flattened text, no context) are dropped at open, never served.

Each store is given what the previous release left behind: an SQLite file
without the `context` column and layout row, a Redis index without the
`ctag` field. Opening it must delete those entries and say so in one log line.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from reprise._protocols import KEY_LAYOUT, Entry
from reprise._stores.embedded import EmbeddedStore
from reprise._stores.redis import RedisStore
from tests.fakes import DIMS, unit

OLD_SCHEMA = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    label INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, partition TEXT NOT NULL,
    prompt TEXT NOT NULL, response TEXT NOT NULL, vector BLOB NOT NULL,
    created_at REAL NOT NULL, expires_at REAL, meta TEXT NOT NULL
);
"""


def _old_sqlite(directory: Path, count: int) -> None:
    directory.mkdir(parents=True)
    con = sqlite3.connect(directory / "cache.sqlite3")
    con.executescript(OLD_SCHEMA)
    con.execute("INSERT INTO settings VALUES ('dims', ?)", (str(DIMS),))
    for i in range(count):
        row = (i + 1, f"old{i}", "", f"user: hi {i}", "answer", unit(i).tobytes(), 1.0, None, "{}")
        con.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    con.commit()
    con.close()


def _entry(entry_id: str, seed: int, context: str = "") -> Entry:
    return Entry(entry_id, "", "hi", "answer", unit(seed), time.time(), context=context)


async def test_an_old_sqlite_store_is_emptied_at_open_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _old_sqlite(tmp_path / "data", 3)
    store = EmbeddedStore(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="reprise.store"):
        await store.open(DIMS)
    try:
        assert await store.get("old0") is None
        assert await store.search(unit(0), "", k=5, max_distance=1.0) == []
        (line,) = [r.getMessage() for r in caplog.records if "key layout" in r.getMessage()]
        assert "dropped 3 cached entries of key layout 1" in line
        assert f"changed to {KEY_LAYOUT}" in line
        await store.upsert(_entry("new", 1, context="c"))
    finally:
        await store.aclose()

    caplog.clear()
    again = EmbeddedStore(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="reprise.store"):
        await again.open(DIMS)
    try:
        got = await again.get("new")
        assert got is not None
        assert got.context == "c"
        matches = await again.search(unit(1), "", k=5, max_distance=0.1, context="c")
        assert [m.entry.id for m in matches] == ["new"]
        assert not [r for r in caplog.records if "key layout" in r.getMessage()]
    finally:
        await again.aclose()


async def test_a_new_empty_sqlite_store_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EmbeddedStore(tmp_path / "fresh")
    with caplog.at_level(logging.WARNING, logger="reprise.store"):
        await store.open(DIMS)
    await store.aclose()
    assert not [r for r in caplog.records if "key layout" in r.getMessage()]


async def test_an_old_redis_index_is_dropped_with_its_entries_and_recreated(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"migrate:{uuid.uuid4().hex}:"
    index = f"{prefix}idx"
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.execute_command(  # type: ignore[no-untyped-call]
            "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, prefix, "SCHEMA",
            "ptag", "TAG", "vector", "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", DIMS,
            "DISTANCE_METRIC", "COSINE",
        )  # fmt: skip
        for i in range(4):
            fields = {"ptag": "x", "partition": "", "prompt": f"user: hi {i}", "response": "a"}
            await client.hset(f"{prefix}old{i}", mapping={**fields, "vector": unit(i).tobytes()})
        store = RedisStore(redis_url, prefix=prefix, timeout=5.0)
        with caplog.at_level(logging.WARNING, logger="reprise.store"):
            await store.open(DIMS)
        try:
            assert await store.get("old0") is None
            assert await client.exists(*[f"{prefix}old{i}" for i in range(4)]) == 0
            (line,) = [r.getMessage() for r in caplog.records if "key layout" in r.getMessage()]
            assert "its 4 cached entries of key layout 1" in line
            await store.upsert(_entry("new", 1, context="c"))
            matches = await store.search(unit(1), "", k=5, max_distance=0.1, context="c")
            assert [m.entry.id for m in matches] == ["new"]
            assert await store.search(unit(1), "", k=5, max_distance=0.1) == []
        finally:
            await store.clear()
            await store.aclose()
        # A second process opening the migrated index keeps its entries.
        again = RedisStore(redis_url, prefix=prefix, timeout=5.0)
        await again.open(DIMS)
        try:
            await again.upsert(_entry("kept", 2))
            reopened = RedisStore(redis_url, prefix=prefix, timeout=5.0)
            await reopened.open(DIMS)
            got = await reopened.get("kept")
            await reopened.aclose()
            assert got is not None
            assert np.allclose(got.vector, unit(2))
        finally:
            await again.clear()
            await again.aclose()
    finally:
        await client.execute_command("FT.DROPINDEX", index, "DD")  # type: ignore[no-untyped-call]
        await client.aclose()


async def test_a_sqlite_store_without_token_vectors_opens_and_serves_its_entries(
    tmp_path: Path,
) -> None:
    """A store of the previous release (no `tokens` column) keeps its entries: none has
    token vectors, and new ones may."""
    store = EmbeddedStore(tmp_path / "data")
    await store.open(DIMS)
    await store.upsert(_entry("old", 1))
    await store.aclose()
    con = sqlite3.connect(tmp_path / "data" / "cache.sqlite3")
    con.execute("ALTER TABLE entries DROP COLUMN tokens")  # as the previous release left it
    con.commit()
    con.close()

    store = EmbeddedStore(tmp_path / "data")
    await store.open(DIMS)
    try:
        assert (await store.get("old")) is not None
        assert await store.stored_tokens(["old"]) == {}
        await store.upsert(dataclasses.replace(_entry("new", 2), tokens=b"vectors"))
        assert await store.stored_tokens(["old", "new"]) == {"new": b"vectors"}
        (stats,) = await store.partition_stats()
        assert stats.entries == 2
    finally:
        await store.aclose()
