"""Prometheus metrics of one gateway, served at `/metrics`.

Each app has its own registry (never prometheus-client's global one), so
several apps in one process, as in the tests, count separately.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.25,
    0.5,
    1.0,
    2.0,
    4.0,
    8.0,
    16.0,
    32.0,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


class Metrics:
    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Histogram] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "reprise_requests",
            "Requests answered, by API, cache status and HTTP status.",
            ["api", "cache_status", "status"],
            registry=r,
        )
        self.lookups = Counter(
            "reprise_cache_lookups",
            "Semantic-cache lookups by outcome: HIT, MISS, BYPASS or FAILED.",
            ["api", "status"],
            registry=r,
        )
        self.lookups_shed = Counter(
            "reprise_cache_lookups_shed",
            "Semantic lookups refused at admission (queue full or past the lookup budget) and "
            "sent to the backend at once; also counted as FAILED lookups.",
            ["api"],
            registry=r,
        )
        self.stores = Counter(
            "reprise_cache_stores",
            "Responses stored, by outcome: stored, skipped (not cacheable) or error.",
            ["api", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "reprise_request_duration_seconds",
            "Time to the end of the response, by API and cache status.",
            ["api", "cache_status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lookup_seconds = Histogram(
            "reprise_cache_lookup_duration_seconds",
            "Time spent in the cache lookup (exact tier, embedding, search, verifier).",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "reprise_upstream_duration_seconds",
            "Time until the backend's response headers arrived.",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.coalesced = Counter(
            "reprise_coalesced_requests",
            "Misses that found an identical request in flight, by outcome: served (its "
            "answer, as a hit) or backend (it failed or took too long: sent on alone).",
            ["api", "outcome"],
            registry=r,
        )
        self.rate_limited = Counter(
            "reprise_rate_limited", "Requests refused by a rate limit.", ["api"], registry=r
        )

    def count(self, metric: Counter, *labels: str) -> None:
        self._child(metric, labels).inc()  # type: ignore[union-attr]

    def observe(self, metric: Histogram, seconds: float, *labels: str) -> None:
        self._child(metric, labels).observe(seconds)  # type: ignore[union-attr]

    def _child(self, metric: Counter | Histogram, labels: tuple[str, ...]) -> Counter | Histogram:
        # `labels()` validates and hashes on every call; on the hit path that shows.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
