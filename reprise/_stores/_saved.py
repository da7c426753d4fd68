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
    """The `ann/` directory beside `cache.sqlite3`: one `.usearch` file per partition."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def take(self, db: Database) -> dict[str, Path]:
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
        if saved.get("token") != token:
            return {}
        return {name: self.directory / file for name, file in saved["partitions"].items()}

    def save(self, db: Database, graphs: dict[str, HNSWIndex]) -> None:
        """Write every graph, the manifest, then the token (last: it vouches for the rest)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {
            name: hashlib.sha256(name.encode()).hexdigest()[:24] + ".usearch" for name in graphs
        }
        for name, graph in graphs.items():
            graph.save(self.directory / files[name])
        for old in self.directory.glob("*.usearch"):
            if old.name not in files.values():
                old.unlink()
        token = uuid.uuid4().hex
        tmp = self.directory / "manifest.json.tmp"
        tmp.write_text(json.dumps({"token": token, "partitions": files}))
        os.replace(tmp, self.directory / "manifest.json")
        db.set_setting(TOKEN, token)
