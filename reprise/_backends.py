"""Pick embedders and stores by name, importing each only when chosen.

The tables map a name to `module:attribute`, so that an optional dependency
(redis-py, a remote embeddings client) is imported only by those who use it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from reprise._exceptions import ConfigError
from reprise._protocols import Embedder, VectorStore

EMBEDDERS: dict[str, str] = {
    "local": "reprise._embedders.local:LocalEmbedder",
    "remote": "reprise._embedders.remote:RemoteEmbedder",
}

STORES: dict[str, str] = {
    "embedded": "reprise._stores.embedded:EmbeddedStore",
    "redis": "reprise._stores.redis:RedisStore",
}


def import_from_string(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {path!r}: {exc}") from exc


def make_embedder(spec: str | Embedder, **options: Any) -> Embedder:
    """`"local"`, a model directory path, an embeddings URL, or an Embedder object.

    `options` go to the embedder's constructor: `headers=`, `model=`, `dims=`,
    `timeout=` for a URL (`RemoteEmbedder`); `threads=`, `cache_dir=` for the
    local model (`LocalEmbedder`).
    """
    if not isinstance(spec, str):
        return spec
    if spec.startswith(("http://", "https://")):
        cls = import_from_string(EMBEDDERS["remote"])
        return cls(spec, **options)  # type: ignore[no-any-return]
    cls = import_from_string(EMBEDDERS["local"])
    if spec == "local":
        return cls(**options)  # type: ignore[no-any-return]
    return cls(model_dir=Path(spec), **options)  # type: ignore[no-any-return]


def make_store(spec: str | Path | VectorStore) -> VectorStore:
    """A data directory path, `:memory:`, a `redis://` / `rediss://` URL, or a store object."""
    if not isinstance(spec, (str, Path)):
        return spec
    text = str(spec)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return import_from_string(STORES["redis"])(text)  # type: ignore[no-any-return]
    if "://" in text:
        raise ConfigError(f"unknown store URL scheme in {text!r}; use a path or redis://")
    return import_from_string(STORES["embedded"])(text)  # type: ignore[no-any-return]
