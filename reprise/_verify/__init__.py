"""Verified hits: decide whether a cached answer answers this prompt.

`verifier.LearnedVerifier` is what `SemanticCache()` uses by default; the
benchmark's ablations are in `reprise._bench.verifiers`.
"""
