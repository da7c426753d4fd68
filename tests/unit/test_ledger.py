"""The admin ledger: tallies, savings, and bounded memory."""

from __future__ import annotations

import pytest

from reprise._gateway import ledger
from reprise._gateway.adminconfig import Price
from reprise._gateway.ledger import OTHER, Ledger
from reprise._gateway.metrics import Metrics


def test_tallies_count_per_api_cache_and_partition() -> None:
    book = Ledger(Metrics(), {"gpt-4o": Price(2.5, 10)})
    book.lookup("chat", "embed", "p1", "MISS")
    book.lookup("chat", "embed", "p1", "HIT")
    saved = {"model": "gpt-4o-2024-08-06", "input_tokens": 10, "output_tokens": 20}
    book.hit("chat", "embed", "p1", {"savings": {**saved, "backend_ms": 250.0}})
    total = book.total.as_json()
    assert (total["hits"], total["misses"], total["hit_rate"]) == (1, 1, 0.5)
    assert total["savings"]["tokens"] == 30
    assert total["savings"]["cost_usd"] == pytest.approx((10 * 2.5 + 20 * 10) / 1e6)
    assert total["savings"]["backend_seconds"] == pytest.approx(0.25)
    assert book.by_partition[("embed", "p1")].counts["HIT"] == 1


def test_a_hit_on_an_entry_without_savings_adds_nothing() -> None:
    book = Ledger(Metrics(), {})
    book.hit("chat", "embed", "p", {})
    assert book.total.as_json()["savings"]["tokens"] == 0


def test_past_the_partition_cap_new_partitions_are_summed_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ledger, "MAX_PARTITIONS", 3)
    book = Ledger(Metrics(), {})
    for i in range(10):
        book.lookup("chat", "embed", f"p{i}", "MISS")
    book.lookup("chat", "embed", "p0", "HIT")  # a known one keeps its own tally
    assert len(book.by_partition) == 4
    assert book.by_partition[("embed", OTHER)].counts["MISS"] == 7
    assert book.by_partition[("embed", "p0")].counts["HIT"] == 1
