"""The config sections for operating the gateway: `admin:` and `prices:`.

    admin:                          # off (every /reprise/admin/ path 404s) unless configured
      key: ${REPRISE_ADMIN_KEY}     # sent as Authorization: Bearer <key>; never a subscription key
      show-partition-names: false   # true: stats and the dashboard name partitions, not digests
      show-prompts: false           # true: the dashboard's recent decisions show prompt text
    prices:                         # optional, USD per million tokens, for the cost-saved figures
      gpt-4o: { input-per-million: 2.50, output-per-million: 10.00 }
      gpt-4o-mini: { input-per-million: 0.15, output-per-million: 0.60 }

A cached answer's model is priced by the longest entry whose name prefixes it
("gpt-4o-2024-08-06" by "gpt-4o"); a model with no entry saves tokens and
time but no recorded cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from reprise._gateway.yamlsource import Map, YamlReader

#: The shortest admin key accepted: a guessable key would guard a purge button.
MIN_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The admin API's key (kept out of `repr`) and what it may show."""

    key: str = field(repr=False)
    show_partition_names: bool = False
    show_prompts: bool = False


@dataclass(frozen=True, slots=True)
class Price:
    """What a model's tokens cost, in USD per million tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


Prices = Mapping[str, Price]


def price_for(prices: Prices, model: str) -> Price | None:
    """The price of `model`: its own entry, else the longest entry that prefixes it."""
    if model in prices:
        return prices[model]
    best = max((name for name in prices if model.startswith(name)), key=len, default=None)
    return None if best is None else prices[best]


def read_admin(reader: YamlReader, root: Map) -> AdminSettings | None:
    if root.get("admin") is None:
        return None
    m = reader.mapping(root["admin"], "admin", root.lines["admin"])
    allowed = ("key", "show-partition-names", "show-prompts")
    reader.keys(m, "admin", allowed, required=("key",))
    key = reader.string(m, "key", "admin")
    if len(key) < MIN_KEY_LENGTH:
        raise reader.fail(
            "admin.key", m.lines["key"], f"must be at least {MIN_KEY_LENGTH} characters"
        )
    return AdminSettings(
        key=key,
        show_partition_names=reader.boolean(m, "show-partition-names", "admin", False),
        show_prompts=reader.boolean(m, "show-prompts", "admin", False),
    )


def read_prices(reader: YamlReader, root: Map) -> Prices:
    if root.get("prices") is None:
        return MappingProxyType({})
    section = reader.mapping(root["prices"], "prices", root.lines["prices"])
    prices: dict[str, Price] = {}
    for model, value in section.items():
        path = f"prices.{model}"
        m = reader.mapping(value, path, section.lines[model])
        wanted = ("input-per-million", "output-per-million")
        reader.keys(m, path, wanted, required=wanted)
        prices[str(model)] = Price(
            reader.number(m, "input-per-million", path, 0.0),
            reader.number(m, "output-per-million", path, 0.0),
        )
    return MappingProxyType(prices)
