"""The SQLite side of the embedded store: every method runs on its one worker thread.

A sqlite3 connection must stay on the thread that made it, and disk I/O must
stay off the event loop, so `EmbeddedStore` owns a single-thread executor and
calls these methods only through it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprise._exceptions import IndexMismatch
from reprise._protocols import Entry

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    label INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    partition TEXT NOT NULL,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    vector BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    meta TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '',
    tokens BLOB
);
CREATE INDEX IF NOT EXISTS entries_partition ON entries (partition);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires_at) WHERE expires_at IS NOT NULL;
"""

LIVE = "(expires_at IS NULL OR expires_at > ?)"
COLUMNS = (
    "label, id, partition, prompt, response, vector, created_at, expires_at, meta, context, tokens"
)
ROW = ", ".join("?" * 11)
#: What an entry weighs, in bytes: the same sum as `entry_size`, computed by SQLite.
SIZE = (
    "LENGTH(CAST(prompt AS BLOB)) + LENGTH(CAST(response AS BLOB)) + LENGTH(vector)"
    " + LENGTH(CAST(meta AS BLOB)) + COALESCE(LENGTH(tokens), 0)"
)
#: When an entry was last read or written; older rows (before recency was kept) have NULL.
USED = "COALESCE(last_used, created_at)"
#: The settings row naming the key layout (`KEY_LAYOUT`) the entries were written in.
LAYOUT = "key_layout"


@dataclass(frozen=True, slots=True)
class Dropped:
    """Entries of another key layout, dropped at open."""

    count: int
    layout: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """Live rows read back at open, without prompts and responses (they stay on disk)."""

    labels: list[int]
    ids: list[str]
    indexes: list[tuple[str, str]]  # (partition, context)
    expires: list[float | None]
    vectors: list[bytes | None]
    sizes: list[int]
    used: list[float]


class Database:
    """One SQLite file (or `:memory:`) holding every entry; thread-confined."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            raise sqlite3.ProgrammingError("the store is not open")
        return self._con

    def open(self, dims: int) -> int:
        """Connect, create the schema, check the dims; return the next free label."""
        if self.path == ":memory:":
            self._con = sqlite3.connect(":memory:")
        else:
            directory = Path(self.path)
            directory.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(directory / "cache.sqlite3")
            self._con.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a power cut may lose the last commits, never corrupt the file;
            # a lost cache entry costs one backend call.
            self._con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(SCHEMA)
        self._add_recency()
        row = self.con.execute("SELECT value FROM settings WHERE key = 'dims'").fetchone()
        if row is None:
            self.con.execute("INSERT INTO settings VALUES ('dims', ?)", (str(dims),))
            self.con.commit()
        elif int(row[0]) != dims:
            self.close()
            raise IndexMismatch(
                f"the store at {self.path!r} holds {row[0]}-dimensional vectors but the "
                f"embedder makes {dims}-dimensional ones; use another data directory or "
                "clear this one (the cached responses belong to another embedding model)"
            )
        (top,) = self.con.execute("SELECT COALESCE(MAX(label), 0) FROM entries").fetchone()
        return int(top) + 1

    def migrate(self, layout: int) -> Dropped | None:
        """Make the entries be of key `layout`: those of any other are deleted, and counted.

        Layout 1 had no `context` column and no layout row: its ids digest a
        flattened request, so no entry of it can be read as a question.
        """
        columns = {row[1] for row in self.con.execute("PRAGMA table_info(entries)")}
        if "context" not in columns:
            self.con.execute("ALTER TABLE entries ADD COLUMN context TEXT NOT NULL DEFAULT ''")
        found = self.setting(LAYOUT)
        if found == str(layout):
            return None
        (count,) = self.con.execute("SELECT COUNT(*) FROM entries").fetchone()
        self.con.execute("DELETE FROM entries")
        self.con.execute("DELETE FROM settings WHERE key = 'ann_token'")
        self.con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (LAYOUT, str(layout)))
        self.con.commit()
        return Dropped(int(count), found or "1") if count else None

    def _add_recency(self) -> None:
        # Stores written before size bounds existed lack the column; their rows count
        # as last used when created.
        columns = {row[1] for row in self.con.execute("PRAGMA table_info(entries)")}
        if "last_used" not in columns:
            self.con.execute("ALTER TABLE entries ADD COLUMN last_used REAL")
        if "tokens" not in columns:  # stores written before token vectors were kept
            self.con.execute("ALTER TABLE entries ADD COLUMN tokens BLOB")
        # The ages of each partition's entries, read from this index alone (`partition_ages`).
        self.con.execute(
            "CREATE INDEX IF NOT EXISTS entries_age ON entries (partition, created_at)"
        )
        self.con.commit()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def setting(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))
        self.con.commit()

    def delete_setting(self, key: str) -> None:
        self.con.execute("DELETE FROM settings WHERE key = ?", (key,))
        self.con.commit()

    def index_sizes(self, now: float) -> dict[tuple[str, str], int]:
        """Live entries per (partition, context)."""
        rows = self.con.execute(
            f"SELECT partition, context, COUNT(*) FROM entries WHERE {LIVE} "
            "GROUP BY partition, context",
            (now,),
        )
        return {(p, c): int(n) for p, c, n in rows}

    def live_rows(
        self, now: float, skip: Collection[tuple[str, str]] = (), chunk: int = 20_000
    ) -> Iterator[Chunk]:
        """Live rows in chunks; the vectors of the indexes in `skip` are left out (None)."""
        skipped = " OR ".join(["(partition = ? AND context = ?)"] * len(skip)) or "0"
        cursor = self.con.execute(
            f"SELECT label, id, partition, context, expires_at, "
            f"CASE WHEN {skipped} THEN NULL ELSE vector END, {SIZE}, {USED} "
            f"FROM entries WHERE {LIVE}",
            (*(name for key in skip for name in key), now),
        )
        while rows := cursor.fetchmany(chunk):
            labels, ids, partitions, contexts, expires, vectors, sizes, used = zip(
                *rows, strict=True
            )
            indexes = list(zip(partitions, contexts, strict=True))
            yield Chunk(
                list(labels),
                list(ids),
                indexes,
                list(expires),
                list(vectors),
                list(sizes),
                list(used),
            )

    def index_vectors(self, index: tuple[str, str], now: float) -> tuple[list[int], bytes]:
        rows = self.con.execute(
            f"SELECT label, vector FROM entries WHERE partition = ? AND context = ? AND {LIVE}",
            (*index, now),
        ).fetchall()
        return [row[0] for row in rows], b"".join(row[1] for row in rows)

    def fetch(self, ids: Sequence[str]) -> dict[str, Entry]:
        marks = ",".join("?" * len(ids))
        rows = self.con.execute(
            "SELECT id, partition, prompt, response, vector, created_at, expires_at, meta, "
            f"context FROM entries WHERE id IN ({marks})",
            tuple(ids),
        )
        return {row[0]: _entry(row) for row in rows}

    def stored_tokens(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The `tokens` of those of `ids` that have them (read apart from the entries)."""
        marks = ",".join("?" * len(ids))
        rows = self.con.execute(
            f"SELECT id, tokens FROM entries WHERE id IN ({marks}) AND tokens IS NOT NULL",
            tuple(ids),
        )
        return {row[0]: bytes(row[1]) for row in rows}

    def upsert(
        self,
        entry: Entry,
        label: int,
        vector: bytes,
        meta: str,
        used: float,
        evict: Sequence[str] = (),
    ) -> None:
        """Write the entry, and delete the `evict` ids, in one transaction."""
        self.con.execute(
            f"INSERT OR REPLACE INTO entries ({COLUMNS}, last_used) VALUES ({ROW}, ?)",
            (
                label,
                entry.id,
                entry.partition,
                entry.prompt,
                entry.response,
                vector,
                entry.created_at,
                entry.expires_at,
                meta,
                entry.context,
                entry.tokens,
                used,
            ),
        )
        if evict:
            self.con.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in evict])
        self.con.commit()

    def touch(self, used: Iterable[tuple[float, str]]) -> None:
        """Record when entries were last used: (time, id) pairs, one transaction."""
        self.con.executemany("UPDATE entries SET last_used = ? WHERE id = ?", used)
        self.con.commit()

    def delete_many(self, ids: Sequence[str]) -> None:
        self.con.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in ids])
        self.con.commit()

    def partition_ages(self) -> dict[str, tuple[float, float]]:
        """partition -> (oldest, newest created_at), from the `entries_age` index alone."""
        rows = self.con.execute(
            "SELECT partition, MIN(created_at), MAX(created_at) FROM entries GROUP BY partition"
        )
        return {p: (float(lo), float(hi)) for p, lo, hi in rows}

    def page(
        self, partition: str | None, now: float, after: int, limit: int
    ) -> list[tuple[int, Entry]]:
        """Up to `limit` (label, entry) of live rows with a label above `after`, by label."""
        where, args = ("AND partition = ?", (partition,)) if partition is not None else ("", ())
        rows = self.con.execute(
            "SELECT id, partition, prompt, response, vector, created_at, expires_at, meta, "
            f"context, label FROM entries WHERE label > ? AND {LIVE} {where} "
            "ORDER BY label LIMIT ?",
            (after, now, *args, limit),
        )
        return [(row[9], _entry(row[:9])) for row in rows]

    def delete(self, entry_id: str) -> None:
        self.con.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
        self.con.commit()

    def clear(self, partition: str | None, now: float) -> int:
        """Delete the partition's rows (or all); return how many of them were live."""
        where, args = ("partition = ?", (partition,)) if partition is not None else ("1", ())
        (live,) = self.con.execute(
            f"SELECT COUNT(*) FROM entries WHERE {where} AND {LIVE}", (*args, now)
        ).fetchone()
        self.con.execute(f"DELETE FROM entries WHERE {where}", args)
        self.con.commit()
        return int(live)

    def purge(self, now: float) -> list[str]:
        """Delete expired rows; return their ids."""
        rows = self.con.execute(
            "DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING id",
            (now,),
        ).fetchall()
        self.con.commit()
        return [row[0] for row in rows]


def _entry(row: tuple[Any, ...]) -> Entry:
    entry_id, partition, prompt, response, vector, created_at, expires_at, meta, context = row
    return Entry(
        id=entry_id,
        partition=partition,
        prompt=prompt,
        response=response,
        vector=np.frombuffer(vector, dtype=np.float32).copy(),
        created_at=created_at,
        expires_at=expires_at,
        meta=json.loads(meta),
        context=context,
    )
