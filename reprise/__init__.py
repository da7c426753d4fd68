"""Reprise: a semantic caching gateway for LLM APIs.

Everything public is importable from here; the modules behind it are private.
"""

from reprise._cache import Decision, Hit, Lookup, SemanticCache, ThresholdVerifier, Verifier
from reprise._embedders.local import LocalEmbedder, TokenEmbeddings
from reprise._embedders.remote import RemoteEmbedder
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
from reprise._prompt import Prompt
from reprise._protocols import Embedder, Entry, Match, VectorStore
from reprise._stores.embedded import EmbeddedStore
from reprise._verify.verifier import LearnedVerifier, RuleVerifier

__version__ = "0.1.0"

__all__ = [
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
