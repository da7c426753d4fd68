"""HNSW graphs saved at a clean close, so that a restart need not rebuild them.

Building the graph of a million entries takes minutes on a small machine;
loading it back takes seconds. SQLite stays the truth: a saved graph is used
only if the token written to SQLite at the same clean close is still there.
`take` deletes that token before the store serves, so a crash (or any write
after it) can never pair a stale graph with newer rows; the next open simply
rebuilds. Entries that expired since the save are removed after loading.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from reprise._stores._index import HNSWIndex
from reprise._stores._sqlite import Database

TOKEN = "ann_token"


class SavedGraphs:
    """The `ann/` directory beside `cache.sqlite3`: one `.usearch` file per large index."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def take(self, db: Database) -> dict[tuple[str, str], Path]:
        """The files saved at the last clean close, if still valid; invalidates them."""
        token = db.setting(TOKEN)
        if token is None:
            return {}
        db.delete_setting(TOKEN)
        manifest = self.directory / "manifest.json"
        try:
            saved = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return {}
        if saved.get("token") != token or "indexes" not in saved:
            return {}
        return {(p, c): self.directory / file for p, c, file in saved["indexes"]}

    def save(self, db: Database, graphs: dict[tuple[str, str], HNSWIndex]) -> None:
        """Write every graph, the manifest, then the token (last: it vouches for the rest)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {key: _file_name(key) for key in graphs}
        for name, graph in graphs.items():
            graph.save(self.directory / files[name])
        for old in self.directory.glob("*.usearch"):
            if old.name not in files.values():
                old.unlink()
        token = uuid.uuid4().hex
        tmp = self.directory / "manifest.json.tmp"
        indexes = [[partition, context, file] for (partition, context), file in files.items()]
        tmp.write_text(json.dumps({"token": token, "indexes": indexes}))
        os.replace(tmp, self.directory / "manifest.json")
        db.set_setting(TOKEN, token)


def _file_name(key: tuple[str, str]) -> str:
    return hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:24] + ".usearch"
