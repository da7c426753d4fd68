"""Parsing FT.SEARCH and FT.INFO replies, as RediSearch 2.10 sends them in RESP2 and RESP3."""

from __future__ import annotations

from typing import Any

import pytest

from reprise._exceptions import IndexMismatch
from reprise._stores.redis import check_index, parse_search

RESP2_SEARCH = [2, b"t:1", [b"dist", b"0", b"prompt", b"hi"], b"t:2", [b"dist", b"0.5"]]
RESP3_SEARCH = {
    b"attributes": [],
    b"total_results": 2,
    b"format": b"STRING",
    b"results": [
        {b"id": b"t:1", b"extra_attributes": {b"dist": b"0", b"prompt": b"hi"}, b"values": []},
        {b"id": b"t:2", b"extra_attributes": {b"dist": b"0.5"}, b"values": []},
    ],
    b"warning": [],
}


def info_resp2(dim: int, metric: bytes, prefix: bytes = b"t:") -> list[Any]:
    return [
        b"index_name", b"idx",
        b"index_definition", [b"key_type", b"HASH", b"prefixes", [prefix], b"default_score", b"1"],
        b"attributes", [
            [b"identifier", b"ptag", b"attribute", b"ptag", b"type", b"TAG", b"SEPARATOR", b","],
            [b"identifier", b"vector", b"attribute", b"vector", b"type", b"VECTOR",
             b"algorithm", b"HNSW", b"data_type", b"FLOAT32", b"dim", dim,
             b"distance_metric", metric, b"M", 16, b"ef_construction", 200],
        ],
        b"num_docs", 1,
    ]  # fmt: skip


def info_resp3(dim: int, metric: bytes) -> dict[bytes, Any]:
    return {
        b"index_name": b"idx",
        b"index_definition": {b"key_type": b"HASH", b"prefixes": [b"t:"], b"default_score": 1.0},
        b"attributes": [
            {b"identifier": b"ptag", b"type": b"TAG", b"SEPARATOR": b",", b"flags": []},
            {b"identifier": b"vector", b"type": b"VECTOR", b"algorithm": b"HNSW",
             b"data_type": b"FLOAT32", b"dim": dim, b"distance_metric": metric, b"M": 16},
        ],
        b"num_docs": 1,
    }  # fmt: skip


@pytest.mark.parametrize("reply", [RESP2_SEARCH, RESP3_SEARCH], ids=["resp2", "resp3"])
def test_search_rows_are_the_same_in_both_protocols(reply: Any) -> None:
    assert parse_search(reply) == [
        (b"t:1", {"dist": b"0", "prompt": b"hi"}),
        (b"t:2", {"dist": b"0.5"}),
    ]


def test_nocontent_search_is_keys_only() -> None:
    assert parse_search([2, b"t:1", b"t:2"]) == [(b"t:1", {}), (b"t:2", {})]
    assert parse_search([0]) == []
    assert parse_search({b"total_results": 0, b"results": []}) == []


@pytest.mark.parametrize("info", [info_resp2(384, b"COSINE"), info_resp3(384, b"COSINE")])
def test_a_matching_index_passes(info: Any) -> None:
    check_index("idx", "t:", 384, info)


@pytest.mark.parametrize("make", [info_resp2, info_resp3], ids=["resp2", "resp3"])
def test_another_dimension_is_a_mismatch_naming_both(make: Any) -> None:
    with pytest.raises(IndexMismatch, match=r"'DIM': 768.*'DIM': 384"):
        check_index("idx", "t:", 384, make(768, b"COSINE"))


@pytest.mark.parametrize("make", [info_resp2, info_resp3], ids=["resp2", "resp3"])
def test_another_metric_is_a_mismatch(make: Any) -> None:
    with pytest.raises(IndexMismatch, match="'DISTANCE_METRIC': 'IP'"):
        check_index("idx", "t:", 384, make(384, b"IP"))


def test_an_index_over_another_prefix_is_a_mismatch() -> None:
    with pytest.raises(IndexMismatch, match="other:"):
        check_index("idx", "t:", 384, info_resp2(384, b"COSINE", prefix=b"other:"))
