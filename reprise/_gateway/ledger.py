"""What the gateway has done since it started, for the admin API and the dashboard.

The app reports each lookup's outcome (`lookup`), each served hit (`hit`) and
each finished request (`finished`); the ledger keeps counts per cache, API and
partition, the savings (also as Prometheus counters, labelled by API and
model), a per-minute hit-rate timeline, recent latencies for percentiles and
the last 100 decisions. All in memory and bounded: one process's view since
it started, as `/metrics` is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from reprise._admin.savings import Savings, from_meta
from reprise._gateway.adminconfig import Prices, price_for
from reprise._gateway.metrics import Metrics

if TYPE_CHECKING:
    from reprise._gateway.asgi import Exchange

RECENT = 100  # decisions kept for the dashboard
LATENCIES = 2048  # recent request latencies kept per cache status, for percentiles
TIMELINE_MINUTES = 60
#: Partitions tallied one by one; past this many, new ones are summed under `OTHER`, so
#: that callers varying their parameters cannot grow the ledger without bound.
MAX_PARTITIONS = 10_000
OTHER = "\x00other partitions"
STATUSES = ("HIT", "MISS", "BYPASS", "FAILED")
COUNT_NAMES = {"HIT": "hits", "MISS": "misses", "BYPASS": "bypasses", "FAILED": "failures"}


@dataclass(slots=True)
class Tally:
    """Lookups by outcome and what the hits saved."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    backend_seconds: float = 0.0

    def add_saving(self, saved: Savings, cost: float) -> None:
        self.input_tokens += saved.input_tokens
        self.output_tokens += saved.output_tokens
        self.cost_usd += cost
        self.backend_seconds += saved.backend_ms / 1e3

    def as_json(self) -> dict[str, Any]:
        lookups = sum(self.counts.values())
        return {
            **{COUNT_NAMES[s]: n for s, n in self.counts.items()},
            "lookups": lookups,
            "hit_rate": self.counts["HIT"] / lookups if lookups else 0.0,
            "savings": {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "tokens": self.input_tokens + self.output_tokens,
                "cost_usd": round(self.cost_usd, 9),
                "backend_seconds": round(self.backend_seconds, 3),
            },
        }


@dataclass(slots=True)
class Noted:
    """What the app notes about a request's lookup as it goes, for the ledger."""

    cache: str
    partition: str = ""
    prompt: str = field(default="", repr=False)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """One finished request of a cached API, as the dashboard lists it."""

    number: int
    at: float
    api: str
    cache: str
    partition: str
    status: str
    reason: str
    ms: float
    http_status: int
    entry: str | None
    score: float | None
    prompt: str = field(repr=False)  # kept for the "wrong answer" button; shown only if opted in


class Ledger:
    """Counts, savings, timeline, latencies and recent decisions of one gateway."""

    def __init__(self, metrics: Metrics, prices: Prices) -> None:
        self.prices = prices
        self.total = Tally()
        self.by_api: dict[str, Tally] = {}
        self.by_cache: dict[str, Tally] = {}
        self.by_partition: dict[tuple[str, str], Tally] = {}  # (cache, partition)
        self.timeline: deque[list[int]] = deque(maxlen=TIMELINE_MINUTES)  # [minute, hits, n]
        self.latencies: dict[str, deque[float]] = {s: deque(maxlen=LATENCIES) for s in STATUSES}
        self.recent: deque[Decision] = deque(maxlen=RECENT)
        self._numbered = 0
        # On the hit path: the tallies of a (api, cache, partition) and the counters'
        # children, found once each (prometheus-client's `labels()` validates every call).
        self._rows: dict[tuple[str, str, str], tuple[Tally, ...]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        registry = metrics.registry
        self.tokens_saved = Counter(
            "reprise_cache_tokens_saved",
            "Tokens served from the cache instead of the backend (the cached answer's usage), "
            "by API, model and direction (input or output).",
            ["api", "model", "direction"],
            registry=registry,
        )
        self.cost_saved = Counter(
            "reprise_cache_cost_saved_usd",
            "Estimated USD saved by cache hits, from the config's price table.",
            ["api", "model"],
            registry=registry,
        )
        self.backend_saved = Counter(
            "reprise_cache_backend_seconds_saved",
            "Backend time saved by cache hits: the stored backend latency of each hit's entry.",
            ["api", "model"],
            registry=registry,
        )

    def lookup(self, api: str, cache: str, partition: str, status: str) -> None:
        """A lookup's outcome: HIT, MISS, BYPASS or FAILED (counted as `/metrics` counts it)."""
        for tally in self._tallies(api, cache, partition):
            tally.counts[status] += 1
        minute = int(time.time() // 60)
        if not self.timeline or self.timeline[-1][0] != minute:
            self.timeline.append([minute, 0, 0])
        self.timeline[-1][1] += status == "HIT"
        self.timeline[-1][2] += 1

    def hit(self, api: str, cache: str, partition: str, meta: Mapping[str, Any]) -> None:
        """A cached answer went out: add what its entry saved."""
        saved = from_meta(meta)
        price = price_for(self.prices, saved.model) if saved.model else None
        cost = price.cost(saved.input_tokens, saved.output_tokens) if price else 0.0
        for tally in self._tallies(api, cache, partition):
            tally.add_saving(saved, cost)
        model = saved.model or "unknown"
        if saved.input_tokens:
            self._child(self.tokens_saved, api, model, "input").inc(saved.input_tokens)
        if saved.output_tokens:
            self._child(self.tokens_saved, api, model, "output").inc(saved.output_tokens)
        if cost:
            self._child(self.cost_saved, api, model).inc(cost)
        if saved.backend_ms:
            self._child(self.backend_saved, api, model).inc(saved.backend_ms / 1e3)

    def _child(self, counter: Counter, *labels: str) -> Any:
        key = (id(counter), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child

    def finished(self, ex: Exchange, status: str, http_status: int, ms: float) -> None:
        """A cached API's request is answered: keep it among the recent decisions."""
        assert ex.noted is not None
        assert ex.api is not None
        self._numbered += 1
        noted = ex.noted
        decision = Decision(
            number=self._numbered,
            at=time.time(),
            api=ex.api.name,
            cache=noted.cache,
            partition=noted.partition,
            status=status,
            reason=noted.reason,
            ms=round(ms, 3),
            http_status=http_status,
            entry=ex.entry,
            score=ex.score,
            prompt=noted.prompt,
        )
        self.recent.append(decision)
        if decision.status in self.latencies:
            self.latencies[decision.status].append(decision.ms)

    def decision(self, number: int) -> Decision | None:
        return next((d for d in self.recent if d.number == number), None)

    def percentiles(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for status, samples in self.latencies.items():
            ordered = sorted(samples)
            out[status] = {"count": len(ordered)}
            for p in (50, 90, 99):
                out[status][f"p{p}_ms"] = _percentile(ordered, p)
        return out

    def _tallies(self, api: str, cache: str, partition: str) -> tuple[Tally, ...]:
        found = self._rows.get((api, cache, partition))
        if found is not None:
            return found
        key = (cache, partition)
        if key not in self.by_partition and len(self.by_partition) >= MAX_PARTITIONS:
            key = (cache, OTHER)
        found = (
            self.total,
            _get(self.by_api, api),
            _get(self.by_cache, cache),
            _get(self.by_partition, key),
        )
        if key[1] != OTHER and len(self._rows) < MAX_PARTITIONS:
            self._rows[(api, cache, partition)] = found
        return found


def _get(tallies: dict[Any, Tally], key: Any) -> Tally:
    tally = tallies.get(key)
    if tally is None:
        tally = tallies[key] = Tally()
    return tally


def _percentile(ordered: list[float], p: int) -> float:
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 3)


class EvictionCollector(Collector):
    """`reprise_cache_evictions_total` per cache, read from the stores at scrape time."""

    def __init__(self, counts: Any) -> None:
        self.counts = counts  # () -> {cache name: evictions}

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "reprise_cache_evictions",
            "Entries evicted to keep a cache within max-entries / max-bytes (embedded "
            "store), or keys Redis evicted under maxmemory (as last read by the stats).",
            labels=["cache"],
        )
        for name, count in self.counts().items():
            family.add_metric([name], count)
        yield family
