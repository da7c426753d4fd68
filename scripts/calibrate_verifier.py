"""Calibrate the shipped verifier's cut-offs on a mix of sources, not on QQP alone.

    .venv/bin/python scripts/train_verifier.py           # the models, from QQP dev
    .venv/bin/python scripts/calibrate_verifier.py       # their cut-offs, from the mix

`train_verifier.py` fits the interaction head and the combiners on QQP dev and
reads their cut-offs off QQP's out-of-fold scores, where label noise caps the
measurable precision near 0.93: the cut-off for 0.90 sat far above what clean
data needs. This script scores the mix of `scripts/verifier_mix.py` without
QQP (MRPC, STS-B, SICK, the LLM paraphrases, minus their held-out parts, plus
synthetic hard negatives and surface positives; none of it seen by the models)
through the runtime code, as the cache decides, and sets each target
precision's cut-off where the served pairs reach it, every source family
weighing the same. It rewrites the cut-offs in `reprise/_data/verifier.json`
and prints the precision and recall per source at each target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from reprise._verify.align import Words, merge_pieces  # noqa: E402
from reprise._verify.model import FEATURES, features, reworded, same_order  # noqa: E402
from reprise._verify.rules import CHECKS, same_words  # noqa: E402
from reprise._verify.weights import VerifierWeights  # noqa: E402

# SemanticCache's default threshold: the cut-offs hold under it.
CEILING = 0.2
TARGETS = (0.80, 0.85, 0.90, 0.95)
Table = dict[str, tuple[Words, np.ndarray]]


async def _embed(texts: list[str]) -> Table:
    from reprise._embedders.local import LocalEmbedder

    embedder = LocalEmbedder(threads=2)
    out: Table = {}
    try:
        for start in range(0, len(texts), 256):
            batch = texts[start : start + 256]
            for text, te in zip(batch, await embedder.embed_tokens(batch), strict=True):
                w = merge_pieces(te.tokens, te.vectors)
                out[text] = (Words(w.words, w.vectors.astype(np.float16), w.content), te.sentence)
    finally:
        await embedder.aclose()
    return out


def token_cache(pairs: Sequence[Any], cache: Path) -> Table:
    """Every text's words and sentence vector, kept under `cache` as they are computed
    (an interrupted run, or a changed mix, embeds only the texts not seen before)."""
    path = cache / "tokens.pkl"
    table: Table = {}
    if path.is_file():
        with path.open("rb") as f:
            table = pickle.load(f)  # our own cache file
    missing = sorted({t for p in pairs for t in (p.text_a, p.text_b)} - table.keys(), key=len)
    for start in range(0, len(missing), 4096):
        table.update(asyncio.run(_embed(missing[start : start + 4096])))
        cache.mkdir(parents=True, exist_ok=True)
        with path.with_suffix(".tmp").open("wb") as f:
            pickle.dump(table, f)
        path.with_suffix(".tmp").replace(path)
        print(f"  embedded {min(start + 4096, len(missing))}/{len(missing)}", file=sys.stderr)
    return table


def scores(rows: Sequence[Any], table: Table, weights: VerifierWeights) -> dict[str, np.ndarray]:
    """Per variant ("head", "align", "lexical"): each row's score as the verifier serves it
    (-inf beyond the ceiling or vetoed by a rule, +inf for same words or a rewording)."""
    head = weights.head
    assert head is not None
    out: dict[str, list[float]] = {"head": [], "align": [], "lexical": []}
    for r in rows:
        (wa, va), (wb, vb) = table[r.text_a], table[r.text_b]
        wa = Words(wa.words, wa.vectors.astype(np.float32), wa.content)
        wb = Words(wb.words, wb.vectors.astype(np.float32), wb.content)
        distance = 1.0 - float(np.dot(va, vb))
        # The cache stores text_a and looks up text_b.
        x = features(r.text_b, r.text_a, distance, wb, wa)
        fixed = _decided(r.text_b, r.text_a, x)
        if fixed is not None:
            for v in out.values():
                v.append(fixed)
            continue
        out["head"].append(head.score(wb, wa, x))
        out["align"].append(weights.combiners["align"].logit(x))
        out["lexical"].append(weights.combiners["lexical"].logit(x))
    return {k: np.asarray(v) for k, v in out.items()}


def _decided(prompt: str, cached: str, x: Sequence[float]) -> float | None:
    """What the verifier decides before any score: -inf (never), +inf (always) or None."""
    rule_flags = [x[FEATURES.index(f"rule_{c}")] for c in CHECKS]
    if x[0] > CEILING or any(rule_flags):
        return -np.inf
    if same_words(prompt, cached) or (reworded(x) and same_order(prompt, cached)):
        return np.inf
    return None


def family(source: str) -> str:
    return (
        "synthetic negatives" if source.startswith("syn-") and source != "syn-surface" else source
    )


def balance(sources: Sequence[str]) -> np.ndarray:
    """Per-row weights under which every source family weighs the same in total."""
    fam = [family(s) for s in sources]
    counts = Counter(fam)
    return np.array([1.0 / counts[f] for f in fam])


def cutoff_at(s: np.ndarray, y: np.ndarray, w: np.ndarray, precision: float) -> float:
    """The lowest finite cut-off whose served rows reach weighted `precision`."""
    order = np.argsort(-s, kind="stable")
    good, total = np.cumsum((w * y)[order]), np.cumsum(w[order])
    ok = np.nonzero((good / np.maximum(total, 1e-12) >= precision) & np.isfinite(s[order]))[0]
    return float(s[order][ok.max()]) if ok.size else float("inf")


def per_source(s: np.ndarray, y: np.ndarray, sources: Sequence[str], cuts: dict[str, float]) -> str:
    src = np.array(sources)
    head = " | ".join(f"target {t}" for t in cuts)
    lines = [f"| source | pairs | {head} |", "|---|---|" + "---|" * len(cuts)]
    for name in sorted(set(sources)):
        m = src == name
        cells = []
        for cut in cuts.values():
            hit = s[m] >= cut
            pos = int((y[m] == 1).sum())
            tp = int((hit & (y[m] == 1)).sum())
            if pos == int(m.sum()):
                cells.append(f"hit {tp / pos:.1%}")
            elif pos == 0:
                cells.append(f"served {hit.mean():.1%}")
            else:
                precision = tp / hit.sum() if hit.any() else float("nan")
                cells.append(f"P {precision:.3f} / R {tp / pos:.3f}")
        lines.append(f"| {name} | {int(m.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    import verifier_mix

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/reprise/verifier")
    parser.add_argument("--out", type=Path, default=ROOT / "reprise" / "_data" / "verifier.json")
    parser.add_argument("--report", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    rows = [r for r in verifier_mix.mix(args.data) if r.source != "qqp"]
    table = token_cache(rows, args.cache)
    weights = VerifierWeights.shipped()
    y = np.array([r.label for r in rows], dtype=np.float64)
    sources = [r.source for r in rows]
    w = balance(sources)
    by_variant = scores(rows, table, weights)
    saved = json.loads(args.out.read_text())
    report = []
    for variant, s in by_variant.items():
        cuts = {f"{t:.2f}": round(cutoff_at(s, y, w, t), 6) for t in TARGETS}
        saved["models"][variant]["cutoffs"] = cuts
        report += [f"### {variant}", "", per_source(s, y, sources, cuts)]
    saved["meta"]["calibrated_on"] = (
        "scripts/verifier_mix.py without QQP: MRPC, STS-B, SICK, LLM paraphrases (held-out "
        "parts excluded), synthetic hard negatives and surface positives; each source family "
        f"weighs the same; {len(rows)} pairs"
    )
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    text = "\n".join(report)
    print(text)
    if args.report:
        args.report.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
