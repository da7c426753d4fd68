"""Assemble benchmarks/RESULTS.md from the outputs of one `benchmarks/run_all.sh` run.

.venv/bin/python benchmarks/make_results.py benchmarks/results benchmarks/RESULTS.md \
    [benchmarks/gateway.md]

With a third argument, the speed tables also replace the marked section of that file.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

from reprise._bench import report

QUALITY_SETS = (
    ("quality-qqp_dev", "QQP dev"),
    ("quality-SICK_train", "SICK train (CONTRADICTION/NEUTRAL = different)"),
    ("quality-msr_paraphrase_train", "MRPC train"),
    ("quality-sts-train", "STS-B train (score >= 4 same, <= 2 different)"),
)
SUMMARY_THRESHOLDS = (0.04, 0.1, 0.2)


def load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def row_at(config: dict[str, Any], thresholds: list[float], t: float) -> dict[str, Any] | None:
    for value, row in zip(thresholds, config["overall"]["rows"], strict=True):
        if abs(value - t) < 1e-9:
            return dict(row)
    return None


def fmt(est: dict[str, Any] | None, *, percent: bool = False) -> str:
    if est is None or est["value"] is None:
        return "-"
    if percent:
        return f"{100 * est['value']:.1f}% [{100 * est['low']:.1f}, {100 * est['high']:.1f}]"
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def quality_summary(results: Path) -> list[str]:
    lines = [
        "## Answer quality (reprise bench quality)",
        "",
        "Each pair's `text_a` is stored in its own partition and `text_b` looked up through "
        "`SemanticCache.explain`, the gateway's code path. `threshold` is the fixed "
        "cosine-distance baseline; `default` is `SemanticCache()`'s verifier. 95% intervals "
        "from 1000 bootstrap resamples (by QQP `group`). False-hit rate = false hits / "
        "lookups. Full per-threshold tables, slices and plots: `benchmarks/results/`. "
        "The verifier's per-lookup time printed there includes computing the prompts' "
        "token vectors with the model, since the benchmark's sentence vectors come from "
        "its vector cache; in the gateway they come from the same model call as the "
        "sentence vector.",
        "",
    ]
    header = [
        "set",
        "configuration",
        "recall @P>=0.85",
        "@P>=0.90",
        "@P>=0.95",
        "@P>=0.99",
        *(f"false-hit rate @{t}" for t in SUMMARY_THRESHOLDS),
    ]
    rows = []
    for stem, title in QUALITY_SETS:
        result = load(results / f"{stem}.json")
        if result is None:
            continue
        pairs = result.get("data", {}).get("pairs")
        label = f"{title}, {pairs:,} pairs" if pairs else title
        for name, config in result["configurations"].items():
            best = config["overall"]["best_recall"]
            cells = [
                "-"
                if best[k] is None
                else f"{best[k]['recall']:.3f} (t={best[k]['threshold']:.2f})"
                for k in ("0.85", "0.90", "0.95", "0.99")
            ]
            fh = [
                fmt(
                    (row_at(config, result["thresholds"], t) or {}).get("false_hit_rate"),
                    percent=True,
                )
                for t in SUMMARY_THRESHOLDS
            ]
            rows.append([label, name, *cells, *fh])
    lines += [report.table(header, rows), ""]
    qqp = results / "quality-qqp_dev.md"
    if qqp.is_file():
        text = qqp.read_text("utf-8").replace("## Quality:", "### QQP dev in full:")
        lines += [text.replace("\n### ", "\n#### "), ""]
    return lines


def _best(best: dict[str, float] | None) -> str:
    return "-" if best is None else f"{best['recall']:.3f} (t={best['threshold']:.2f})"


def speed_section(results: Path) -> list[str]:
    path = results / "speed.md"
    if not path.is_file():
        return []
    return [
        "## Gateway speed (reprise bench speed)",
        "",
        "Ratios to the floors measured in the same run (the issue's targets), then every "
        "cell: `slow` counts requests over 3x their cell's p50, `upstream` what reached the "
        "fake upstream (so hit rows are known to be hits), `cache` the X-Cache-Status of "
        "the responses. Semantic-hit latencies are over the requests answered as semantic "
        "hits. Analysis and profiles: `gateway.md`.",
        "",
        path.read_text("utf-8").strip(),
        "",
    ]


def peers_section(results: Path) -> list[str]:
    peers = load(results / "peers.json")
    if peers is None:
        return []
    systems = _systems(results, peers)
    lines = [
        "## Side by side: Reprise, LiteLLM, GPTCache",
        "",
        f"Same machine, same run: one fake upstream ({peers['latency_s']} s per answer) for "
        "everyone, the same all-MiniLM-L6-v2 (Reprise in process; LiteLLM and GPTCache "
        "through an OpenAI-compatible /v1/embeddings endpoint serving that model, as they "
        "need one), the same prompts and load driver, LiteLLM's redis-semantic cache on a "
        "Valkey + RediSearch. Speed runs at cosine distance 0.03 for every system (LiteLLM "
        "similarity 0.97, GPTCache 0.985) so that rewordings hit and distinct prompts miss. "
        f"Load average when the peers ran: {peers.get('load_average', '-')}.",
        "",
        "Versions: " + ", ".join(f"{name}: {v['version']}" for name, v in peers["systems"].items()),
        "",
    ]
    lines += peer_speed(systems), ""
    lines += _peer_quality(results, peers), ""
    lines += [
        "Threshold scales, all converted to cosine distance d (lower is stricter):",
        "",
        "- Reprise `score-threshold` is d itself (APIM's unit).",
        "- LiteLLM `similarity_threshold` s: redisvl distance_threshold = 1 - s, so d = 1 - s. "
        "LiteLLM has no default (its docs use 0.8, d = 0.2); RedisVL's own default "
        "distance_threshold is 0.1 (LiteLLM s = 0.9).",
        "- GPTCache `similarity_threshold` s (default 0.8): FAISS IndexFlatL2 returns the "
        "squared L2 distance, 2d for unit vectors; SearchDistanceEvaluation scores 4 - L2² and "
        "serves when the score >= 4s, so d <= 2(1 - s): the default 0.8 is d = 0.4, and d = 0.1 "
        "is s = 0.95.",
        "",
    ]
    return lines


def _systems(results: Path, peers: dict[str, Any]) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    ours = load(results / "speed.json")
    for store, cells in (ours or {}).get("stores", {}).items():
        systems[f"Reprise, {store}"] = {"speed": cells}
    return systems | peers["systems"]


def peer_speed(systems: dict[str, Any]) -> str:
    """The issue's table: one row per system, each column lower (or higher) is better."""
    header = [
        "system",
        "exact hit p50 / p99 ms",
        "semantic hit p50 / p99 ms",
        "miss overhead p50 ms",
        "slow outliers (exact, semantic, miss)",
        "top-c semantic hits/s",
        "top-c misses/s",
        "top-c FAILED",
    ]
    rows, scores = [], {}
    for name, data in systems.items():
        w = (data.get("speed") or {}).get("workloads")
        if not w:
            continue
        scores[name] = _scores(w)
        rows.append([name, *_peer_cells(w)])
    return report.table(header, rows) + "\n\n" + _ahead(scores)


def _levels(w: dict[str, Any]) -> tuple[str, str]:
    levels = sorted(w["semantic"], key=int)
    return levels[0], levels[-1]


def _peer_cells(w: dict[str, Any]) -> list[str]:
    """The row's cells; "-" where a system was not measured (RedisVL: no HTTP, no load)."""
    one, top = _levels(w)
    score = _scores(w)
    cells = [
        f"{w['exact'][one]['p50_ms']:.2f} / {w['exact'][one]['p99_ms']:.2f}",
        f"{w['semantic'][one]['p50_ms']:.2f} / {w['semantic'][one]['p99_ms']:.2f}",
        f"+{score['miss overhead']:.2f}" if "miss overhead" in score else "-",
        ", ".join(str(w[k][one].get("slow", "-")) if k in w else "-" for k in _SLOW),
    ]
    if top == one:  # one level only: no throughput measured
        return [*cells, "-", "-", "-"]
    failed = sum(w[k][top]["cache"].get("failed", 0) for k in w)
    hits = w["semantic"][top].get("hits_per_s", float("nan"))
    return [*cells, f"{hits:.0f} (c={top})", f"{w['miss'][top]['rps']:.0f}", str(failed)]


_SLOW = ("exact", "semantic", "miss")


def _scores(w: dict[str, Any]) -> dict[str, float]:
    """Each measured column as a number where lower is better (throughputs negated)."""
    one, top = _levels(w)
    out = {
        "exact hit p50": w["exact"][one]["p50_ms"],
        "exact hit p99": w["exact"][one]["p99_ms"],
        "semantic hit p50": w["semantic"][one]["p50_ms"],
        "semantic hit p99": w["semantic"][one]["p99_ms"],
    }
    if "miss" in w:
        out["miss overhead"] = w["miss"][one]["p50_ms"] - w["direct"][one]["p50_ms"]
    if top != one:
        semantic = w["semantic"][top]
        out["semantic hits/s"] = -semantic.get("hits_per_s", semantic["rps"])
        out["misses/s"] = -w["miss"][top]["rps"]
    return out


def _ahead(scores: dict[str, dict[str, float]]) -> str:
    """Whether every Reprise row beats every peer on every column, naming any that does not."""
    ours = {k: v for k, v in scores.items() if k.startswith("Reprise")}
    peers = {k: v for k, v in scores.items() if not k.startswith("Reprise")}
    behind = [
        f"{name} on {column} (vs {peer})"
        for name, mine in ours.items()
        for peer, theirs in peers.items()
        for column, value in mine.items()
        if column in theirs and not value < theirs[column]
    ]
    if not ours or not peers:
        return ""
    if not behind:
        return "Reprise, on every store measured, is ahead of every peer on every column."
    return "Reprise is **not** ahead everywhere: " + "; ".join(behind) + "."


def _peer_quality(results: Path, peers: dict[str, Any]) -> str:
    sample = load(results / "peers-sample" / "quality-qqp_dev.json")
    count = peers["pairs"]["count"]
    header = [
        "system",
        "setting",
        "cosine distance",
        "hit rate",
        "precision",
        "recall",
        "false-hit rate",
    ]
    rows = []
    if sample is not None:
        for name, config in sample["configurations"].items():
            for t in sample["thresholds"]:
                row = row_at(config, sample["thresholds"], t) or {}
                rows.append(
                    [
                        f"Reprise ({name})",
                        f"score-threshold {t}",
                        f"{t:.2f}",
                        fmt(row.get("hit_rate"), percent=True),
                        fmt(row.get("precision")),
                        fmt(row.get("recall")),
                        fmt(row.get("false_hit_rate"), percent=True),
                    ]
                )
    for name, data in peers["systems"].items():
        for cell in data["quality"]:
            rows.append(
                [
                    name,
                    f"similarity_threshold {cell['native']}",
                    f"{cell['distance']:.2f}",
                    report.pct(cell["hit_rate"]),
                    report.num(_n(cell["precision"])),
                    report.num(_n(cell["recall"])),
                    report.pct(cell["false_hit_rate"]),
                ]
            )
    intro = (
        f"Quality on the same {count} QQP dev pairs (seeded sample, seed "
        f"{peers['pairs']['seed']}), each pair in an empty cache: `text_a` sent, then "
        "`text_b`. Peers through their OpenAI-compatible endpoints, a hit being an answer "
        "that names `text_a`; Reprise through `reprise bench quality` on the same sample "
        "(intervals: 95% bootstrap).\n\n"
    )
    return intro + report.table(header, rows)


def _n(value: float | None) -> float:
    return float("nan") if value is None else value


def main() -> int:
    results, target = Path(sys.argv[1]), Path(sys.argv[2])
    info = report.machine()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `benchmarks/run_all.sh` on {now}.",
        "",
        *([os.environ["RUN_NOTE"], ""] if os.environ.get("RUN_NOTE") else []),
        f"Machine: {report.machine_line(info)}. The machine is a shared 2-core VM "
        "with other jobs running: ratios matter more than absolute times.",
        "",
    ]
    lines += quality_summary(results)
    lines += speed_section(results)
    lines += peers_section(results)
    target.write_text("\n".join(lines).rstrip() + "\n", "utf-8")
    print(f"wrote {target}", file=sys.stderr)
    if len(sys.argv) > 3:  # the speed tables into gateway.md too, between its markers
        fill_markers(Path(sys.argv[3]), [*speed_section(results)[2:], *peers_speed(results)])
    return 0


def peers_speed(results: Path) -> list[str]:
    peers = load(results / "peers.json")
    if peers is None:
        return []
    table = peer_speed(_systems(results, peers))
    return ["Side by side with the peers (setup in RESULTS.md):", "", table, ""]


BEGIN, END = "<!-- run_all.sh: speed tables -->", "<!-- end of speed tables -->"


def fill_markers(path: Path, lines: list[str]) -> None:
    """Replace what lies between `BEGIN` and `END` in `path` with `lines`."""
    text = path.read_text("utf-8")
    head, found, rest = text.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{path}: no {BEGIN} ... {END} section to fill")
    body = "\n".join(["", f"Produced by `benchmarks/run_all.sh` on {_now()}.", "", *lines])
    path.write_text(head + BEGIN + body.rstrip() + "\n" + END + tail, "utf-8")
    print(f"wrote {path}", file=sys.stderr)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
