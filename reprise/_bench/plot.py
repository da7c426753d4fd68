"""PNG plots of benchmark results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_quality(result: dict[str, Any], path: Path) -> None:
    """Precision and hit rate against the threshold, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    thresholds = result["thresholds"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for name, config in result["configurations"].items():
        rows = config["overall"]["rows"]
        for axis, metric in ((top, "precision"), (bottom, "hit_rate")):
            values = [row[metric]["value"] for row in rows]
            low = [row[metric]["low"] for row in rows]
            high = [row[metric]["high"] for row in rows]
            (line,) = axis.plot(thresholds, values, marker=".", label=name)
            axis.fill_between(thresholds, low, high, alpha=0.2, color=line.get_color())
    top.set_ylabel("precision of hits")
    bottom.set_ylabel("hit rate")
    bottom.set_xlabel("score threshold (cosine distance)")
    top.set_title(f"{Path(result['data']['file']).name}: {result['data']['pairs']} pairs")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
