"""Quality metrics with 95% bootstrap intervals.

Each lookup is one row: was it a hit, was the hit correct, could a hit have been
correct. Rows are resampled by `group` when the data has groups (pairs sharing a
question are not independent), else one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]

METRICS = ("hit_rate", "precision", "recall", "false_hit_rate")


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _ratio(num: Floats, den: Floats) -> Floats:
    # A ratio with nothing to count (no hits: no precision) is NaN, not 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


def metrics_from_counts(counts: Floats) -> dict[str, Floats]:
    """`counts[..., 0:4]` = lookups, hits, correct hits, positives -> metric arrays."""
    lookups, hits, correct, positives = (counts[..., i] for i in range(4))
    return {
        "hit_rate": _ratio(hits, lookups),
        "precision": _ratio(correct, hits),
        "recall": _ratio(correct, positives),
        "false_hit_rate": _ratio(hits - correct, lookups),
    }


def group_index(groups: Sequence[str | None]) -> npt.NDArray[np.int64]:
    """Row -> resampling unit: its group, or the row itself when it has none."""
    ids: dict[object, int] = {}
    return np.array(
        [
            ids.setdefault(g if g is not None else ("row", i), len(ids))
            for i, g in enumerate(groups)
        ],
        dtype=np.int64,
    )


def bootstrap(
    hits: Bools,
    correct: Bools,
    positives: Bools,
    units: npt.NDArray[np.int64],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Estimate]]:
    """Metrics per column of `hits`/`correct` (shape rows x thresholds), with 95% intervals."""
    n_units = int(units.max()) + 1 if len(units) else 0
    n_cols = hits.shape[1]
    # Per unit and threshold: lookups, hits, correct hits, positives.
    counts = np.zeros((n_units, n_cols, 4))
    np.add.at(counts[:, :, 0], units, 1.0)
    np.add.at(counts[:, :, 1], units, hits.astype(float))
    np.add.at(counts[:, :, 2], units, correct.astype(float))
    np.add.at(counts[:, :, 3], units, positives.astype(float)[:, None])
    point = metrics_from_counts(counts.sum(axis=0))
    flat = counts.reshape(n_units, n_cols * 4)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[Floats]] = {m: [] for m in METRICS}
    for chunk in _chunks(resamples, 100):
        weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=chunk)
        resampled = (weights @ flat).reshape(chunk, n_cols, 4)
        for name, values in metrics_from_counts(resampled).items():
            samples[name].append(values)
    out: list[dict[str, Estimate]] = []
    for col in range(n_cols):
        row: dict[str, Estimate] = {}
        for name in METRICS:
            values = np.concatenate(samples[name])[:, col]
            values = values[~np.isnan(values)]
            low, high = np.percentile(values, [2.5, 97.5]) if len(values) else (np.nan, np.nan)
            row[name] = Estimate(float(point[name][col]), float(low), float(high))
        out.append(row)
    return out


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - i) for i in range(0, total, size)]


def best_recall(
    thresholds: Sequence[float], rows: Sequence[dict[str, Estimate]], min_precision: float
) -> tuple[float, float] | None:
    """(recall, threshold) of the threshold with the best recall at precision >= the floor."""
    best: tuple[float, float] | None = None
    for threshold, row in zip(thresholds, rows, strict=True):
        precision, recall = row["precision"].value, row["recall"].value
        if np.isnan(precision) or np.isnan(recall) or precision < min_precision:
            continue
        if best is None or recall > best[0]:
            best = (recall, threshold)
    return best


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> list[float]:
    if not values:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(np.asarray(values, dtype=float), qs)]
