"""The config's `admin:`, `prices:` and `cache.max-entries / max-bytes`."""

from __future__ import annotations

import pytest

from reprise._exceptions import ConfigError
from reprise._gateway.adminconfig import Price, price_for
from reprise._gateway.config import parse_config

BASE = """
backends:
  chat: { url: "http://127.0.0.1:9/v1" }
apis:
  - { name: chat, path: /chat, backend: chat }
"""


def test_admin_prices_and_bounds_are_read() -> None:
    config = parse_config(
        BASE
        + """
admin: { key: "0123456789abcdefXYZ", show-partition-names: true }
prices:
  gpt-4o: { input-per-million: 2.5, output-per-million: 10 }
cache: { url: ./data, max-entries: 1000, max-bytes: 5000000 }
"""
    )
    assert config.admin is not None
    assert config.admin.key == "0123456789abcdefXYZ"
    assert "0123456789" not in repr(config.admin)
    assert (config.admin.show_partition_names, config.admin.show_prompts) == (True, False)
    assert config.prices["gpt-4o"] == Price(2.5, 10.0)
    assert (config.cache.max_entries, config.cache.max_bytes) == (1000, 5_000_000)


def test_without_the_sections_nothing_is_on() -> None:
    config = parse_config(BASE)
    assert config.admin is None
    assert dict(config.prices) == {}
    assert (config.cache.max_entries, config.cache.max_bytes) == (None, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("admin: { key: short }", r"admin\.key.*at least 16"),
        ("admin: { }", "missing required key 'key'"),
        ("admin: { key: 0123456789abcdefXYZ, show-prompt: true }", "did you mean 'show-prompts'"),
        ("prices: { gpt-4o: { input-per-million: 2 } }", "output-per-million"),
        ("prices: { gpt-4o: { input-per-million: -1, output-per-million: 1 } }", "positive"),
        ("cache: { max-entries: 0 }", r"cache\.max-entries.*positive integer"),
        ("cache: { url: 'redis://h:6379', max-entries: 10 }", "maxmemory"),
        (
            "subscriptions: { a: { key: 0123456789abcdefXYZ } }\n"
            "admin: { key: 0123456789abcdefXYZ }",
            "must differ from every subscription key",
        ),
    ],
)
def test_mistakes_name_the_key_and_line(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(BASE + extra)
    assert "line" in str(caught.value)


def test_a_model_is_priced_by_the_longest_name_prefixing_it() -> None:
    prices = {"gpt-4o": Price(2.5, 10), "gpt-4o-mini": Price(0.15, 0.6)}
    assert price_for(prices, "gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)
    assert price_for(prices, "gpt-4o-2024-08-06") == Price(2.5, 10)
    assert price_for(prices, "o1") is None
    assert Price(2.5, 10).cost(1_000_000, 100_000) == pytest.approx(3.5)
