"""The public surface: adding or removing a name must be a deliberate edit here."""

from __future__ import annotations

import importlib

import reprise

PUBLIC = [
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


def test_all_is_exactly_the_public_names_sorted() -> None:
    assert reprise.__all__ == PUBLIC
    assert sorted(reprise.__all__) == reprise.__all__


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in PUBLIC:
        module = importlib.import_module("reprise")
        assert hasattr(module, name), name
        assert getattr(module, name).__module__.startswith("reprise."), name


def test_cache_errors_are_the_ones_to_catch_for_failing_open() -> None:
    for name in [
        "EmbedderError",
        "EmbedderTimeout",
        "StoreError",
        "StoreUnavailable",
        "IndexMismatch",
    ]:
        assert issubclass(getattr(reprise, name), reprise.CacheError), name
    for name in ["ConfigError", "RequestError"]:
        assert not issubclass(getattr(reprise, name), reprise.CacheError), name
    assert reprise.__version__
