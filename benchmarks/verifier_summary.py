"""One table of the verifier on every held-out set, from `reprise bench quality` outputs.

    .venv/bin/python benchmarks/verifier_summary.py DIR [--threshold 0.2] [--fixed 0.15]

Reads DIR/quality-*.json (written by benchmarks/verifier_sets.sh) and prints, per set:
the default verifier at `--threshold` (SemanticCache's default score_threshold) and a
plain fixed threshold of `--fixed` with no verifier, as hit rate, precision, recall,
false-hit rate and, where a set flags them, contradictions served.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _row(name: str, pairs: int, config: str, summary: dict[str, Any], at: int) -> str:
    metrics = {k: v["value"] for k, v in summary["rows"][at].items()}
    hits, lookups, positives = summary["hits"][at], summary["lookups"], summary["positives"]
    negatives = lookups - positives
    correct = round((metrics.get("precision") or 0.0) * hits)
    wrong = hits - correct
    recall = f"{correct / positives:.1%} ({correct}/{positives})" if positives else "-"
    served = f"{wrong}/{negatives} ({wrong / negatives:.1%})" if negatives else "-"
    precision = f"{correct / hits:.3f}" if hits else "-"
    return f"| {name} | {pairs} | {config} | {recall} | {served} | {precision} |"


def summary(directory: Path, threshold: float, fixed: float) -> str:
    lines = [
        "| set | pairs | configuration | rewordings served (recall) | look-alikes served "
        "(wrong hits) | precision |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(directory.glob("quality-*.json")):
        result = json.loads(path.read_text())
        thresholds = result["thresholds"]
        name = Path(result["data"]["file"]).stem
        if result["data"].get("fold"):
            name += f" (fold {result['data']['fold']})"
        pairs = result["data"]["pairs"]
        configs = result["configurations"]
        plain = configs["threshold"]
        lines.append(
            _row(name, pairs, f"threshold {fixed}", plain["overall"], thresholds.index(fixed))
        )
        at = thresholds.index(threshold)
        for config, result_of in configs.items():
            if config == "threshold":
                continue
            label = f"verifier {config}, {threshold}"
            lines.append(_row(name, pairs, label, result_of["overall"], at))
            for flag, sliced in result_of["slices"].items():
                if flag == "contradiction":
                    lines.append(_row(f"{name}: {flag}", sliced["lookups"], label, sliced, at))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--threshold", type=float, default=0.2)
    parser.add_argument("--fixed", type=float, default=0.15)
    args = parser.parse_args(argv)
    sys.stdout.write(summary(args.directory, args.threshold, args.fixed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
