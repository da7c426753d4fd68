"""`reprise bench quality`: how often the cache serves a wrong answer, on labelled pairs.

For every configuration (the fixed-threshold baseline and each `--verifier`) and
threshold: hit rate, precision of hits, recall, and the false-hit rate (false hits
/ lookups, the share of users served a wrong answer), each with a 95% bootstrap
interval; the best recall at precision >= 0.85 / 0.90 / 0.95 / 0.99; the same per
slice (rows flagged hard_negative, number_mismatch, ...); a PNG of precision and
hit rate against the threshold. `--replay` also streams the prompts through one
shared partition, as traffic would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reprise._bench import report, stats
from reprise._bench.data import FORMATS, Pair, load_pairs
from reprise._bench.pipeline import (
    median_or_nan,
    replay,
    sweep_pairs,
    unique_texts,
    warm_embeddings,
)
from reprise._bench.vectors import SavedVectors
from reprise._bench.verifiers import VERIFIERS
from reprise._cache import SemanticCache, ThresholdVerifier
from reprise._embedders.tokens import TokenMemory, token_memory
from reprise._exceptions import ConfigError
from reprise._plugins import EMBEDDERS, import_from_string, make_embedder
from reprise._protocols import Embedder, Verifier

PRECISION_FLOORS = (0.85, 0.90, 0.95, 0.99)
SLICE_THRESHOLDS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
BASELINE = "threshold"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (one or more sets, each reported on its own)")
    data.add_argument(
        "--pairs",
        action="append",
        default=[],
        metavar="FILE",
        help="pairs file: JSONL {text_a, text_b, label[, group, flags]}",
    )
    data.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="format of the --pairs files (default: from the file name)",
    )
    for fmt in FORMATS[1:]:
        data.add_argument(
            f"--{fmt}",
            action="append",
            default=[],
            metavar="FILE",
            help=f"a {fmt.upper()} file from the original distribution",
        )
    data.add_argument(
        "--limit", type=int, default=None, help="evaluate a seeded random sample of this many pairs"
    )
    data.add_argument(
        "--fold",
        default=None,
        metavar="K/N",
        help="only pairs whose group falls in fold K of N (held-out evaluation)",
    )
    cfg = parser.add_argument_group("cache")
    cfg.add_argument(
        "--thresholds",
        default="0:0.30:0.01",
        help="START:STOP:STEP or a comma list of cosine distances",
    )
    cfg.add_argument(
        "--verifier",
        action="append",
        default=[],
        metavar="NAME",
        help=f"configuration to compare (repeatable): {BASELINE!r}, 'default', "
        "a name from reprise._bench.verifiers, or module:attr (default: threshold and default)",
    )
    cfg.add_argument("--embedder", default="local", help="embedder spec, as SemanticCache takes")
    cfg.add_argument(
        "--embed-cache",
        default=None,
        metavar="DIR",
        help="keep computed vectors here for later runs (same model only)",
    )
    cfg.add_argument("--store", default=":memory:", help="store spec, as SemanticCache takes")
    cfg.add_argument("--candidates", type=int, default=None, help="candidates per lookup")
    rep = parser.add_argument_group("replay")
    rep.add_argument(
        "--replay", action="store_true", help="also stream prompts through one partition"
    )
    rep.add_argument(
        "--replay-threshold",
        type=float,
        action="append",
        default=[],
        help="threshold(s) for the replay (default: the cache default)",
    )
    rep.add_argument("--replay-limit", type=int, default=None, help="at most this many prompts")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="bench-results", help="directory for .json, .md, .png")
    out.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    out.add_argument("--seed", type=int, default=0)
    out.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        return asyncio.run(_main(args))
    except ConfigError as exc:
        print(f"reprise bench quality: {exc}", file=sys.stderr)
        return 2


def parse_thresholds(text: str) -> list[float]:
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            count = math.floor((stop - start) / step + 1e-9) + 1
            values = [round(start + i * step, 6) for i in range(count)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"--thresholds: {exc}") from exc
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise ConfigError(f"--thresholds must be cosine distances in [0, 1], got {text!r}")
    return sorted(set(values))


def datasets(args: argparse.Namespace) -> list[tuple[Path, str | None]]:
    sets: list[tuple[Path, str | None]] = [(Path(p), args.format) for p in args.pairs]
    for fmt in FORMATS[1:]:
        sets += [(Path(p), fmt) for p in getattr(args, fmt)]
    if not sets:
        raise ConfigError("give at least one data set: --pairs FILE (or --sick/--mrpc/--stsb)")
    return sets


def select(pairs: list[Pair], *, limit: int | None, fold: str | None, seed: int) -> list[Pair]:
    if fold:
        k, n = (int(x) for x in fold.split("/"))
        if not 0 <= k < n:
            raise ConfigError(f"--fold K/N needs 0 <= K < N, got {fold}")
        pairs = [p for i, p in enumerate(pairs) if _fold_of(p.group or str(i), n) == k]
    if limit is not None and limit < len(pairs):
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


def _fold_of(group: str, n: int) -> int:
    return zlib.crc32(group.encode()) % n


def make_bench_embedder(args: argparse.Namespace) -> tuple[Embedder, TokenMemory | None]:
    """The configured embedder, and the token memory to hand the cache if it sits under
    saved vectors. The local model runs with every core, as bulk embedding is
    throughput-bound (the vectors are the same as with the gateway's one thread)."""
    if args.embedder == "local":
        cls = import_from_string(EMBEDDERS["local"])
        embedder: Embedder = cls(threads=os.cpu_count() or 1)
    else:
        embedder = make_embedder(args.embedder)
    if not args.embed_cache:
        return embedder, None  # the cache puts its own token memory over the model
    memory = token_memory(embedder)
    return SavedVectors(memory or embedder, Path(args.embed_cache)), memory


def resolve_verifier(name: str, default: Verifier) -> Verifier:
    """A configuration name -> the verifier it means."""
    if name == BASELINE:
        return ThresholdVerifier()
    if name == "default":
        return default
    if ":" not in name:
        if name not in VERIFIERS:
            known = ", ".join(sorted(VERIFIERS))
            raise ConfigError(f"unknown verifier {name!r}; known: {known}")
        return VERIFIERS[name]()
    obj = import_from_string(name)
    return obj if hasattr(obj, "decide") else obj()  # type: ignore[no-any-return]


def configurations(names: Sequence[str], cache: SemanticCache) -> dict[str, Verifier]:
    default = cache.verifier
    if not names:
        names = [BASELINE] if isinstance(default, ThresholdVerifier) else [BASELINE, "default"]
    return {name: resolve_verifier(name, default) for name in dict.fromkeys(names)}


async def _main(args: argparse.Namespace) -> int:
    thresholds = parse_thresholds(args.thresholds)
    loaded = [
        (path, select(load_pairs(path, fmt), limit=args.limit, fold=args.fold, seed=args.seed))
        for path, fmt in datasets(args)
    ]
    embedder, memory = make_bench_embedder(args)
    options: dict[str, Any] = {"store": args.store, "embedder": embedder}
    if args.candidates is not None:
        options["candidates"] = args.candidates
    out_dir = Path(args.out)
    async with SemanticCache(**options) as cache:
        if memory is not None:
            cache.tokens = memory
        configs = configurations(args.verifier, cache)
        for path, pairs in loaded:
            result = await evaluate(cache, pairs, thresholds, configs, args)
            result["data"] = {
                "file": str(path),
                "pairs": len(pairs),
                "limit": args.limit,
                "fold": args.fold,
                "seed": args.seed,
            }
            write_outputs(result, out_dir / f"quality-{path.stem}")
    return 0


async def evaluate(
    cache: SemanticCache,
    pairs: list[Pair],
    thresholds: list[float],
    configs: dict[str, Verifier],
    args: argparse.Namespace,
) -> dict[str, Any]:
    progress = not args.no_progress
    await warm_embeddings(cache, unique_texts(pairs), progress=progress)
    saved = getattr(cache.embedder, "inner", None)
    if isinstance(saved, SavedVectors):
        saved.save()  # now, not at exit: an interrupted run keeps its vectors
    labels = np.array([p.label == 1 for p in pairs])
    units = stats.group_index([p.group for p in pairs])
    flags = sorted({k for p in pairs for k, v in p.flags.items() if v})
    out: dict[str, Any] = {
        "thresholds": thresholds,
        "configurations": {},
        "machine": report.machine(),
    }
    for name, verifier in configs.items():
        cache.verifier = verifier
        sweep = await sweep_pairs(cache, pairs, thresholds, progress=progress, desc=name)
        correct = sweep.hits & labels[:, None]
        config: dict[str, Any] = {
            "overall": _summary(thresholds, sweep.hits, correct, labels, units, args),
            "exact_hits": int(sweep.exact.sum()),
            "verify_ms_p50": median_or_nan(sweep.verify_ms),
            "verify_ms_p99": stats.percentiles(sweep.verify_ms, (99,))[0],
            "slices": {},
        }
        for flag in flags:
            mask = np.array([bool(p.flags.get(flag)) for p in pairs])
            config["slices"][flag] = _summary(
                thresholds, sweep.hits[mask], correct[mask], labels[mask], units[mask], args
            )
        if args.replay:
            config["replay"] = [
                (
                    await replay(
                        cache, pairs, t, seed=args.seed, limit=args.replay_limit, progress=progress
                    )
                ).as_dict()
                for t in (args.replay_threshold or [cache.score_threshold])
            ]
        out["configurations"][name] = config
    return out


def _summary(
    thresholds: list[float],
    hits: np.ndarray[Any, Any],
    correct: np.ndarray[Any, Any],
    labels: np.ndarray[Any, Any],
    units: np.ndarray[Any, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    _, compact = np.unique(units, return_inverse=True)
    rows = stats.bootstrap(
        hits, correct, labels, compact.astype(np.int64), resamples=args.resamples, seed=args.seed
    )
    best = {}
    for floor in PRECISION_FLOORS:
        found = stats.best_recall(thresholds, rows, floor)
        best[f"{floor:.2f}"] = (
            None if found is None else {"recall": found[0], "threshold": found[1]}
        )
    return {
        "lookups": len(labels),
        "positives": int(labels.sum()),
        "hits": [int(h) for h in hits.sum(axis=0)],
        "rows": [{k: v.as_dict() for k, v in row.items()} for row in rows],
        "best_recall": best,
    }


def write_outputs(result: dict[str, Any], stem: Path) -> None:
    from reprise._bench.plot import plot_quality  # matplotlib only when writing

    markdown = render(result)
    print(markdown)
    stem.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(finite(result), indent=1), "utf-8")
    plot_quality(result, stem.with_suffix(".png"))
    print(f"\nwrote {stem}.md, .json, .png", file=sys.stderr)


def finite(value: Any) -> Any:
    """The result with NaN (a ratio of nothing, such as precision without hits) as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def render(result: dict[str, Any]) -> str:
    data = result["data"]
    lines = [
        f"## Quality: {Path(data['file']).name} ({data['pairs']} pairs"
        + (f", sample of {data['limit']}, seed {data['seed']}" if data["limit"] else "")
        + (f", fold {data['fold']}" if data["fold"] else "")
        + ")",
        "",
    ]
    thresholds = result["thresholds"]
    for name, config in result["configurations"].items():
        overall = config["overall"]
        lines += [
            f"### {name}",
            "",
            f"{overall['lookups']} lookups, {overall['positives']} labelled same; "
            f"{config['exact_hits']} exact-tier hits; verifier p50 "
            f"{report.num(config['verify_ms_p50'], 3)} ms per lookup with candidates.",
            "",
            _sweep_table(thresholds, overall),
            "",
            _best_table(overall),
            "",
        ]
        for flag, summary in config["slices"].items():
            lines += [
                f"Slice `{flag}` ({summary['lookups']} lookups, "
                f"{summary['positives']} labelled same):",
                "",
                _sweep_table(thresholds, summary, only=SLICE_THRESHOLDS),
                "",
            ]
        for rep in config.get("replay", []):
            lines += [_replay_line(rep), ""]
    return "\n".join(lines).rstrip()


def _sweep_table(
    thresholds: list[float], summary: dict[str, Any], only: Sequence[float] | None = None
) -> str:
    rows = []
    for t, hits, row in zip(thresholds, summary["hits"], summary["rows"], strict=True):
        if only is not None and not any(abs(t - o) < 1e-9 for o in only):
            continue
        est = {k: stats.Estimate(**v) for k, v in row.items()}
        rows.append(
            [
                f"{t:.2f}",
                hits,
                report.interval(est["hit_rate"], percent=True),
                report.interval(est["precision"]),
                report.interval(est["recall"]),
                report.interval(est["false_hit_rate"], percent=True),
            ]
        )
    header = ["threshold", "hits", "hit rate", "precision", "recall", "false-hit rate"]
    return report.table(header, rows)


def _best_table(summary: dict[str, Any]) -> str:
    rows = []
    for floor, best in summary["best_recall"].items():
        rows.append(
            [
                f">= {floor}",
                "-" if best is None else f"{best['recall']:.3f}",
                "-" if best is None else f"{best['threshold']:.2f}",
            ]
        )
    return report.table(["precision", "best recall", "at threshold"], rows)


def _replay_line(rep: dict[str, Any]) -> str:
    return (
        f"Replay at {rep['threshold']:.2f} ({rep['lookups']} prompts, one partition): "
        f"{rep['hits']} hits ({report.pct(rep['hit_rate'])}), {rep['correct_hits']} correct, "
        f"{rep['false_hits']} false ({report.pct(rep['false_hit_rate'], 2)} of lookups; "
        f"{rep['labelled_false_hits']} on pairs labelled different), {rep['misses']} misses; "
        f"recall {report.num(rep['recall'])} of {rep['opportunities']} possible hits, "
        f"precision {report.num(rep['precision'])}."
    )
