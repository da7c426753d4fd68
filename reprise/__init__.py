"""Reprise: a semantic caching gateway for LLM APIs.

Everything public is importable from here; the modules behind it are private.
Each name is imported on first use (PEP 562), so `import reprise` stays cheap and
loads onnxruntime, usearch or redis-py only for those who use them; the
exceptions, which callers catch, are imported at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reprise._exceptions import (
    CacheError,
    ConfigError,
    EmbedderError,
    EmbedderTimeout,
    IndexMismatch,
    RepriseError,
    RequestError,
    StoreError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from reprise._cache import SemanticCache, ThresholdVerifier
    from reprise._embedders.local import LocalEmbedder, TokenEmbeddings
    from reprise._embedders.remote import RemoteEmbedder
    from reprise._prompt import Prompt
    from reprise._protocols import (
        AdminStore,
        Decision,
        Embedder,
        Entry,
        Hit,
        Lookup,
        Match,
        PartitionStats,
        VectorStore,
        Verifier,
    )
    from reprise._stores.embedded import EmbeddedStore
    from reprise._verify.verifier import LearnedVerifier, RuleVerifier

__version__ = "0.1.0"

__all__ = [
    "AdminStore",
    "CacheError",
    "ConfigError",
    "Decision",
    "EmbeddedStore",
    "Embedder",
    "EmbedderError",
    "EmbedderTimeout",
    "Entry",
    "Hit",
    "IndexMismatch",
    "LearnedVerifier",
    "LocalEmbedder",
    "Lookup",
    "Match",
    "PartitionStats",
    "Prompt",
    "RemoteEmbedder",
    "RepriseError",
    "RequestError",
    "RuleVerifier",
    "SemanticCache",
    "StoreError",
    "StoreUnavailable",
    "ThresholdVerifier",
    "TokenEmbeddings",
    "VectorStore",
    "Verifier",
]

# The lazily imported names and their modules (the `TYPE_CHECKING` block above,
# which type checkers read, must name the same).
_LAZY = {
    "SemanticCache": "reprise._cache",
    "ThresholdVerifier": "reprise._cache",
    "LocalEmbedder": "reprise._embedders.local",
    "TokenEmbeddings": "reprise._embedders.local",
    "RemoteEmbedder": "reprise._embedders.remote",
    "Prompt": "reprise._prompt",
    "AdminStore": "reprise._protocols",
    "Decision": "reprise._protocols",
    "Embedder": "reprise._protocols",
    "Hit": "reprise._protocols",
    "Lookup": "reprise._protocols",
    "Verifier": "reprise._protocols",
    "Entry": "reprise._protocols",
    "Match": "reprise._protocols",
    "PartitionStats": "reprise._protocols",
    "VectorStore": "reprise._protocols",
    "EmbeddedStore": "reprise._stores.embedded",
    "LearnedVerifier": "reprise._verify.verifier",
    "RuleVerifier": "reprise._verify.verifier",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reprise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once; later lookups don't come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
