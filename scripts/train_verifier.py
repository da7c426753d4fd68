"""Train the verifier's models on a mix of sources; write reprise/_data/verifier.json.

    .venv/bin/python scripts/train_verifier.py [--data ../shared/data] [--report FILE]

Reproducible from `../shared/data`: the mix of `scripts/verifier_mix.py` (QQP, MRPC,
STS-B, SICK and the LLM paraphrases, less their held-out parts, plus synthetic
one-fact changes and chat-style rewordings generated from those training texts),
the local model's token vectors of every text (cached under --cache), then:

- two logistic combiners over the verifier's cheap features (bi-encoder distance,
  rule flags, alignment gaps, lexical overlap), "align" and "lexical";
- the interaction head over both prompts' word vectors (`verifier_head.py`),
  several seeds averaged, blended with the align combiner.

Everything is fitted with cross-validation grouped by each row's `key` (a QQP
group, else the seed text), so no text is in both the fitted and the scored
folds. Each target precision's cut-off is read off the out-of-fold scores, with
every source family weighing the same, so that no one dataset's label noise sets
it. `--report` writes the per-source precision and recall at each target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from verifier_mix import Row, mix  # noqa: E402

from reprise._embedders.local import ModelSpec  # noqa: E402
from reprise._verify.align import Words, merge_pieces  # noqa: E402
from reprise._verify.model import (  # noqa: E402
    FEATURES,
    LEXICAL_FEATURES,
    NEAR_DISTANCE,
    features,
    reworded,
)
from reprise._verify.rules import CHECKS  # noqa: E402

FOLDS = 5
# The distance beyond which a candidate is clearly different: SemanticCache's
# default score_threshold, which the default cut-offs are calibrated under.
CEILING = 0.2
# The pairs the combiner is fitted on (distance <= ZONE, no rule conflict).
ZONE = 0.15
TARGETS = (0.80, 0.85, 0.90, 0.95, 0.97, 0.98, 0.99)
# The interaction head's training zone, and the weight of the combiner's logit
# in the verifier's score; both chosen on the out-of-fold recall.
HEAD_ZONE = 0.3
COMBINER_WEIGHT = 0.25


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


def token_cache(rows: Sequence[Row], cache: Path) -> Table:
    """Every text's words and sentence vector, kept under `cache` as they are computed
    (an interrupted run, or a changed mix, embeds only the texts not seen before).
    The file is named after the model's weights, so a new fine-tune starts afresh."""
    path = cache / f"tokens-{ModelSpec.load().fingerprint()}.pkl"
    table: Table = {}
    if path.is_file():
        with path.open("rb") as f:
            table = pickle.load(f)  # our own cache file
    missing = sorted({t for r in rows for t in (r.text_a, r.text_b)} - table.keys(), key=len)
    for start in range(0, len(missing), 4096):
        table.update(asyncio.run(_embed(missing[start : start + 4096])))
        cache.mkdir(parents=True, exist_ok=True)
        with path.with_suffix(".tmp").open("wb") as f:
            pickle.dump(table, f)
        path.with_suffix(".tmp").replace(path)
        print(f"  embedded {min(start + 4096, len(missing))}/{len(missing)}", file=sys.stderr)
    return table


def feature_matrix(pairs: Sequence[Row], table: Table) -> np.ndarray:
    rows = []
    for p in pairs:
        wa, va = table[p.text_a]
        wb, vb = table[p.text_b]
        distance = 1.0 - float(np.dot(va, vb))
        wa = Words(wa.words, wa.vectors.astype(np.float32), wa.content)
        wb = Words(wb.words, wb.vectors.astype(np.float32), wb.content)
        # The cache stores text_a and looks up text_b: the same order here.
        rows.append(features(p.text_b, p.text_a, distance, wb, wa))
    return np.asarray(rows, dtype=np.float64)


def fold_of(row: Row) -> int:
    return zlib.crc32(row.key.encode()) % FOLDS


def family(source: str) -> str:
    negative = source.startswith("syn-") and source not in ("syn-surface", "syn-reword")
    return "synthetic negatives" if negative else source


def balance(sources: Sequence[str], labels: Sequence[int]) -> np.ndarray:
    """Per-row weights: the rewordings and the look-alikes weigh the same in total, and
    within each, every source family does. Precision then means the share of served
    pairs that are right when a cache sees as many look-alikes as rewordings, whatever
    each dataset's own mix of labels."""
    cells = [(family(s), y) for s, y in zip(sources, labels, strict=True)]
    counts = Counter(cells)
    per_class = Counter(y for _, y in counts)
    return np.array([1.0 / (counts[c] * per_class[c[1]]) for c in cells])


def cutoff_at(s: np.ndarray, y: np.ndarray, w: np.ndarray, precision: float) -> float:
    """The lowest finite cut-off whose served rows reach weighted `precision`."""
    order = np.argsort(-s, kind="stable")
    good, total = np.cumsum((w * y)[order]), np.cumsum(w[order])
    ok = np.nonzero((good / np.maximum(total, 1e-12) >= precision) & np.isfinite(s[order]))[0]
    return float(s[order][ok.max()]) if ok.size else float("inf")


class Logistic:
    """L2-regularised logistic regression by Newton's method, on standardised features."""

    def __init__(self, l2: float = 1.0) -> None:
        self.l2 = l2

    def fit(self, x: np.ndarray, y: np.ndarray) -> Logistic:
        self.mean = x.mean(axis=0)
        self.scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
        z = np.hstack([(x - self.mean) / self.scale, np.ones((len(x), 1))])
        w = np.zeros(z.shape[1])
        reg = np.full(z.shape[1], self.l2)
        reg[-1] = 0.0
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-(z @ w)))
            grad = z.T @ (p - y) + reg * w
            hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        self.coef, self.intercept = w[:-1], w[-1]
        return self

    def logit(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


def fit(x: np.ndarray, y: np.ndarray, names: Sequence[str], l2: float) -> Logistic:
    """Fit on the grey zone only: pairs within `ZONE` that no rule vetoes.

    Those are the pairs the verifier ever scores; fitted on all pairs, the far
    ones (easy negatives) dominate the loss and blur the ranking at the top.
    """
    cols = [FEATURES.index(n) for n in names]
    keep = (x[:, 0] <= ZONE) & ~vetoed(x)
    return Logistic(l2).fit(x[keep][:, cols], y[keep])


def masked(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Scores as the verifier decides: a rule conflict is never served, and same words,
    rewordings and near duplicates are served without a score."""
    s = np.where(unscored(x), np.inf, s)
    return np.where(vetoed(x), -np.inf, s)


def vetoed(x: np.ndarray) -> np.ndarray:
    return x[:, [FEATURES.index(f"rule_{c}") for c in CHECKS]].any(axis=1)


def unscored(x: np.ndarray) -> np.ndarray:
    """Rows the verifier serves without a learned score: same words, or a rewording."""
    near = x[:, FEATURES.index("distance")] <= NEAR_DISTANCE
    return (x[:, FEATURES.index("same_words")] > 0) | near | np.array([reworded(row) for row in x])


def cutoffs_for(variant: str, oof: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Each target's cut-off on the balanced out-of-fold scores, printed with its recall."""
    cutoffs = {}
    for target in TARGETS:
        cut = cutoff_at(oof, y, w, target)
        cutoffs[f"{target:.2f}"] = round(cut, 6)
        recall = float((oof[y == 1] >= cut).mean())
        print(
            f"{variant:8s} out-of-fold: cut-off {cut:.3f} at precision {target:.2f}, "
            f"recall {recall:.3f}"
        )
    return cutoffs


def train(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, folds: np.ndarray, ceiling: float, l2: float
) -> tuple[dict, dict[str, np.ndarray]]:
    """Both runtime combiners, with cut-offs read off out-of-fold scores under the ceiling.

    Also returns each combiner's raw out-of-fold logits (the head blends one in).
    """
    models, raw = {}, {}
    within = x[:, 0] <= ceiling
    for variant, names in (("align", FEATURES), ("lexical", LEXICAL_FEATURES)):
        cols = [FEATURES.index(n) for n in names]
        raw[variant] = np.zeros(len(y))
        for k in range(FOLDS):
            model = fit(x[folds != k], y[folds != k], names, l2)
            raw[variant][folds == k] = model.logit(x[folds == k][:, cols])
        oof = np.where(within, masked(x, raw[variant]), -np.inf)
        full = fit(x, y, names, l2)
        cutoffs = cutoffs_for(variant, oof, y, w)
        models[variant] = {
            "features": list(names),
            "mean": full.mean.round(6).tolist(),
            "scale": full.scale.round(6).tolist(),
            "coef": full.coef.round(6).tolist(),
            "intercept": round(float(full.intercept), 6),
            "cutoffs": cutoffs,
        }
    return models, raw


def word_items(pairs: Sequence[Row], table: Table) -> tuple[list, list]:
    """Per pair: (vectors, content flags) of text_a and text_b, as the head reads them."""
    from reprise._verify.head import MAX_WORDS

    def item(text: str) -> tuple[np.ndarray, np.ndarray]:
        w = table[text][0]
        vectors = np.asarray(w.vectors[:MAX_WORDS], dtype=np.float32)
        return vectors, np.asarray(w.content[:MAX_WORDS], dtype=np.float32)

    return [item(p.text_a) for p in pairs], [item(p.text_b) for p in pairs]


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    folds: np.ndarray,
    items: tuple[list, list],
    ceiling: float,
    combiner_oof: np.ndarray,
) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """The interaction heads: out-of-fold scores for the cut-offs, then one fit on all.

    Trained like the combiner on the grey zone (distance <= HEAD_ZONE, no rule
    conflict). The cache looks up text_b against a stored text_a; the head is
    symmetric, so the order does not matter. The cut-offs are for the head's
    logit plus COMBINER_WEIGHT times the align combiner's (`combiner_oof`, its
    out-of-fold logits), as the verifier scores.
    """
    import verifier_head as vh

    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    xs = ((x - mean) / scale).astype(np.float32)
    zone = (x[:, 0] <= HEAD_ZONE) & ~vetoed(x)
    a, b = items
    oof = np.zeros(len(y))
    for k in range(FOLDS):
        train_rows = np.nonzero(zone & (folds != k))[0]
        test_rows = np.nonzero(zone & (folds == k))[0]
        for seed in vh.SEEDS:
            head = vh.fit(*_rows(a, b, xs, train_rows), y[train_rows], seed)
            oof[test_rows] += vh.predict(head, *_rows(a, b, xs, test_rows)) / len(vh.SEEDS)
        print(f"  head fold {k + 1}/{FOLDS}", file=sys.stderr)
    oof = np.where(x[:, 0] <= ceiling, masked(x, oof + COMBINER_WEIGHT * combiner_oof), -np.inf)
    cutoffs = cutoffs_for("head", oof, y, w)
    rows = np.nonzero(zone)[0]
    heads = [vh.fit(*_rows(a, b, xs, rows), y[rows], seed) for seed in vh.SEEDS]
    _check_runtime(heads, a, b, x, mean, scale)
    arrays = {k: np.stack([vh.weights(h)[k] for h in heads]) for k in vh.weights(heads[0])}
    model = {
        "features": list(FEATURES),
        "mean": mean.round(6).tolist(),
        "scale": scale.round(6).tolist(),
        "cutoffs": cutoffs,
        "seeds": list(vh.SEEDS),
        "zone": HEAD_ZONE,
        "combiner_weight": COMBINER_WEIGHT,
    }
    return model, arrays, oof


def _rows(a: list, b: list, xs: np.ndarray, rows: np.ndarray) -> tuple[list, list, np.ndarray]:
    return [a[i] for i in rows], [b[i] for i in rows], xs[rows]


def _check_runtime(
    heads: list, a: list, b: list, x: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> None:
    """The numpy forward pass the cache runs must agree with torch's before weights ship."""
    import verifier_head as vh

    from reprise._verify.head import InteractionHead

    arrays = {k: np.stack([vh.weights(h)[k] for h in heads]) for k in vh.weights(heads[0])}
    runtime = InteractionHead.from_arrays(arrays, mean, scale, {0.9: 0.0})
    xs = ((x - mean) / scale).astype(np.float32)
    rows = np.arange(0, len(a), max(1, len(a) // 50))
    want = sum(vh.predict(h, *_rows(a, b, xs, rows)) for h in heads) / len(heads)
    for row, expected in zip(rows, want, strict=True):
        got = runtime.logit(_words(a[row]), _words(b[row]), x[row])
        if abs(got - expected) > 1e-3:
            raise SystemExit(f"numpy head disagrees with torch: {got} vs {expected}")


def _words(item: tuple[np.ndarray, np.ndarray]) -> Words:
    """A `word_items` entry as the runtime head reads it (the words themselves unused)."""
    vectors, content = item
    return Words(("",) * len(vectors), vectors, tuple(bool(c) for c in content))


def per_source(s: np.ndarray, y: np.ndarray, sources: Sequence[str], cuts: dict[str, float]) -> str:
    """A markdown table: each source's precision and recall (or hit / served rate) per target."""
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/reprise/verifier")
    parser.add_argument("--out", type=Path, default=ROOT / "reprise" / "_data" / "verifier.json")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument(
        "--ceiling", type=float, default=CEILING, help="the cache threshold the cut-offs assume"
    )
    parser.add_argument("--report", type=Path, default=None, help="also write tables here")
    args = parser.parse_args(argv)
    rows = mix(args.data)
    table = token_cache(rows, args.cache)
    x = feature_matrix(rows, table)
    y = np.array([r.label for r in rows], dtype=np.float64)
    w = balance([r.source for r in rows], [r.label for r in rows])
    folds = np.array([fold_of(r) for r in rows])
    models, raw = train(x, y, w, folds, args.ceiling, args.l2)
    models["head"], arrays, head_oof = train_head(
        x, y, w, folds, word_items(rows, table), args.ceiling, raw["align"]
    )
    meta: dict[str, Any] = {
        "trained_on": f"scripts/verifier_mix.py: {dict(Counter(r.source for r in rows))}",
        "cut_offs": "out of fold, every source family weighing the same",
        "folds": FOLDS,
        "grouped_by": "key",
        "l2": args.l2,
        "ceiling": args.ceiling,
        "zone": ZONE,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "models": models}, indent=1) + "\n")
    np.savez_compressed(args.out.with_name("verifier_head.npz"), **arrays)
    print(f"wrote {args.out}")
    np.savez(args.cache / "oof.npz", head=head_oof, y=y, w=w, sources=[r.source for r in rows])
    if args.report:
        sources = [r.source for r in rows]
        text = per_source(head_oof, y, sources, models["head"]["cutoffs"])
        args.report.write_text("Out-of-fold, head (the default), per source:\n\n" + text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
