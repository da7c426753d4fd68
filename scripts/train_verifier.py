"""Train the verifier's learned combiner and write reprise/_data/verifier.json.

    .venv/bin/python scripts/train_verifier.py [--data ../shared/data] [--out FILE]

Reproducible: the local model's token embeddings (one pass, cached under
--cache), then a logistic regression over the verifier's cheap features
(bi-encoder distance, rule flags, alignment gaps, lexical overlap), fitted on
the QQP dev pairs with cross-validation grouped by `group`, so that no question
is in both the fitted and the scored folds. The operating points (probability
cut-offs per target precision) are read off the out-of-fold scores, never off
rows the model was fitted on. `--report` prints per-dataset figures instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from reprise._bench.data import Pair, load_pairs  # noqa: E402
from reprise._verify.align import ALIGN_FEATURES, Words, merge_pieces  # noqa: E402
from reprise._verify.model import (  # noqa: E402
    FEATURES,
    LEXICAL_FEATURES,
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
TARGETS = (0.80, 0.85, 0.90, 0.95)
# The interaction head's training zone, and the weight of the combiner's logit
# in the verifier's score; both chosen on the out-of-fold recall.
HEAD_ZONE = 0.3
COMBINER_WEIGHT = 0.25


CONSTRUCTED = ROOT / "tests" / "data" / "constructed_pairs.jsonl"


def datasets(data: Path) -> dict[str, list[Pair]]:
    out = {"qqp": load_pairs(data / "qqp_dev.jsonl"), "constructed": load_pairs(CONSTRUCTED)}
    for name, rel in {
        "sick": "sick/SICK_train.txt",
        "mrpc": "mrpc/msr_paraphrase_train.txt",
        "stsb": "stsb/sts-train.csv",
    }.items():
        if (data / rel).is_file():
            out[name] = load_pairs(data / rel)
    return out


async def _embed_all(texts: list[str]) -> dict[str, tuple[Words, np.ndarray]]:
    from reprise._embedders.local import LocalEmbedder

    embedder = LocalEmbedder(threads=2)
    out: dict[str, tuple[Words, np.ndarray]] = {}
    try:
        for start in range(0, len(texts), 256):
            batch = texts[start : start + 256]
            for text, te in zip(batch, await embedder.embed_tokens(batch), strict=True):
                w = merge_pieces(te.tokens, te.vectors)
                w = Words(w.words, w.vectors.astype(np.float16), w.content)
                out[text] = (w, te.sentence)
            if start % 5120 == 0:
                print(f"  embedded {start + len(batch)}/{len(texts)}", file=sys.stderr)
    finally:
        await embedder.aclose()
    return out


def token_cache(
    name: str, pairs: Sequence[Pair], cache: Path
) -> dict[str, tuple[Words, np.ndarray]]:
    texts = sorted({t for p in pairs for t in (p.text_a, p.text_b)})
    digest = zlib.crc32("\n".join(texts).encode())
    path = cache / f"{name}-{digest:08x}.pkl"
    if path.is_file():
        with path.open("rb") as f:
            return pickle.load(f)  # our own cache file
    table = asyncio.run(_embed_all(texts))
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(table, f)
    return table


def feature_matrix(pairs: Sequence[Pair], table: dict[str, tuple[Words, np.ndarray]]) -> np.ndarray:
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


def fold_of(group: str | None, text: str) -> int:
    return zlib.crc32((group or text).encode()) % FOLDS


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


def recall_at(scores: np.ndarray, y: np.ndarray, precision: float) -> tuple[float, float]:
    """Best recall with precision >= `precision` when serving scores >= a cut-off; (recall, cut)."""
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(y[order])
    n = np.arange(1, len(y) + 1)
    prec = tp / n
    ok = np.nonzero(prec >= precision)[0]
    if ok.size == 0:
        return 0.0, float("inf")
    i = ok.max()
    return float(tp[i] / max(y.sum(), 1)), float(scores[order][i])


# Variants measured in the report: which features, and whether rule conflicts veto.
VARIANTS: dict[str, tuple[tuple[str, ...] | None, bool]] = {
    "threshold (baseline)": (None, False),
    "rules": (None, True),
    "alignment": (("distance", "distance_sq", *ALIGN_FEATURES), False),
    "combiner, no alignment": (LEXICAL_FEATURES, True),
    "combiner, no rule veto": (FEATURES, False),
    "combiner (rules + alignment)": (FEATURES, True),
}


def fit(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], l2: float, *, veto: bool = True
) -> Logistic:
    """Fit on the grey zone only: pairs within `ZONE` that no rule vetoes.

    Those are the pairs the verifier ever scores; fitted on all pairs, the far
    ones (easy negatives) dominate the loss and blur the ranking at the top.
    """
    cols = [FEATURES.index(n) for n in names]
    keep = x[:, 0] <= ZONE
    if veto:
        keep &= ~x[:, [FEATURES.index(f"rule_{c}") for c in CHECKS]].any(axis=1)
    return Logistic(l2).fit(x[keep][:, cols], y[keep])


def scores_for(
    x: np.ndarray, names: tuple[str, ...] | None, veto: bool, model: Logistic | None
) -> np.ndarray:
    """Higher = more confident it is the same request; vetoed pairs get -inf."""
    if names is None or model is None:
        return masked(x, -x[:, FEATURES.index("distance")], veto=veto, learned=False)
    return masked(x, model.logit(x[:, [FEATURES.index(n) for n in names]]), veto=veto)


def masked(x: np.ndarray, s: np.ndarray, *, veto: bool = True, learned: bool = True) -> np.ndarray:
    """Scores as the verifier decides: a rule conflict is never served, and a learned
    verifier serves same words and rewordings without scoring them."""
    if not veto:
        return s
    if learned:
        s = np.where(unscored(x), np.inf, s)
    return np.where(vetoed(x), -np.inf, s)


def vetoed(x: np.ndarray) -> np.ndarray:
    return x[:, [FEATURES.index(f"rule_{c}") for c in CHECKS]].any(axis=1)


def unscored(x: np.ndarray) -> np.ndarray:
    """Rows the verifier serves without a learned score: same words, or a rewording."""
    return (x[:, FEATURES.index("same_words")] > 0) | np.array([reworded(row) for row in x])


def rate_table(scores: np.ndarray, y: np.ndarray, cut: float) -> tuple[float, float, float, float]:
    """Hit rate, precision, recall and false-hit rate when serving scores >= cut."""
    hit = scores >= cut
    n_hit = max(int(hit.sum()), 1)
    return (
        float(hit.mean()),
        float((hit & (y == 1)).sum() / n_hit) if hit.any() else float("nan"),
        float((hit & (y == 1)).sum() / max(int(y.sum()), 1)),
        float((hit & (y == 0)).mean()),
    )


def report(
    sets: dict[str, list[Pair]],
    x_of: dict[str, np.ndarray],
    ceiling: float,
    l2: float,
    head_scores: dict[str, np.ndarray],
) -> str:
    """Markdown tables: every variant on every set, QQP out-of-fold (grouped by `group`).

    `head_scores` are the shipped default's scores per set (QQP: out of fold).
    """
    qqp = sets["qqp"]
    y_q = np.array([p.label for p in qqp], dtype=np.float64)
    folds = np.array([fold_of(p.group, p.text_a) for p in qqp])
    lines = [
        f"Default operating point: distance ceiling {ceiling} (the cache's `score_threshold`), "
        "the learned score's cut-off for target precision 0.90 (out-of-fold on QQP dev).",
        "",
        "| variant | set | recall @P0.85 | recall @P0.90 | hit rate | precision | recall "
        "| false-hit rate | false hits: hard negatives | number mismatches | contradictions |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, (names, veto) in VARIANTS.items():
        oof = np.full(len(y_q), -np.inf)
        for k in range(FOLDS):
            model = (
                fit(x_of["qqp"][folds != k], y_q[folds != k], names, l2, veto=veto)
                if names
                else None
            )
            part = folds == k
            oof[part] = scores_for(x_of["qqp"][part], names, veto, model)
        full = fit(x_of["qqp"], y_q, names, l2, veto=veto) if names else None
        scores = {
            name: oof if name == "qqp" else scores_for(x_of[name], names, veto, full)
            for name in sets
        }
        lines += _report_rows(variant, sets, x_of, scores, ceiling, learned=bool(names))
    lines += _report_rows(DEFAULT_VARIANT, sets, x_of, head_scores, ceiling, learned=True)
    return "\n".join(lines) + "\n"


DEFAULT_VARIANT = "default (rules + head + combiner)"


def _report_rows(
    variant: str,
    sets: dict[str, list[Pair]],
    x_of: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    ceiling: float,
    *,
    learned: bool,
) -> list[str]:
    """One row per set; the operating point is the QQP cut-off for precision 0.90."""
    y_q = np.array([p.label for p in sets["qqp"]], dtype=np.float64)
    within = {name: x_of[name][:, 0] <= ceiling for name in sets}
    cut = recall_at(np.where(within["qqp"], scores["qqp"], -np.inf), y_q, 0.90)[1]
    cut = cut if learned else -ceiling
    rows = []
    for name, pairs in sets.items():
        y = np.array([p.label for p in pairs], dtype=np.float64)
        s = np.where(within[name], scores[name], -np.inf)
        r85, r90 = recall_at(s, y, 0.85)[0], recall_at(s, y, 0.90)[0]
        hit_rate, precision, recall, fhr = rate_table(s, y, cut)
        slices = []
        for flag in ("hard_negative", "number_mismatch", "contradiction"):
            mask = np.array([bool(p.flags.get(flag)) and p.label == 0 for p in pairs])
            slices.append(f"{(s[mask] >= cut).mean():.1%}" if mask.any() else "-")
        rows.append(
            f"| {variant} | {name} | {r85:.3f} | {r90:.3f} | {hit_rate:.1%} | "
            f"{precision:.3f} | {recall:.3f} | {fhr:.2%} | {' | '.join(slices)} |"
        )
    return rows


def train(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, ceiling: float, l2: float
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
        cutoffs = {}
        for target in TARGETS:
            recall, cut = recall_at(oof, y, target)
            cutoffs[f"{target:.2f}"] = round(cut, 6)
            print(f"{variant:8s} out-of-fold recall at precision {target:.2f}: {recall:.3f}")
        models[variant] = {
            "features": list(names),
            "mean": full.mean.round(6).tolist(),
            "scale": full.scale.round(6).tolist(),
            "coef": full.coef.round(6).tolist(),
            "intercept": round(float(full.intercept), 6),
            "cutoffs": cutoffs,
        }
    return models, raw


def word_items(pairs: Sequence[Pair], table: dict) -> tuple[list, list]:
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
    cutoffs = {}
    for target in TARGETS:
        recall, cut = recall_at(oof, y, target)
        cutoffs[f"{target:.2f}"] = round(cut, 6)
        print(f"head     out-of-fold recall at precision {target:.2f}: {recall:.3f}")
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


def shipped_scores(
    pairs: Sequence[Pair], x: np.ndarray, table: dict, models: dict, arrays: dict
) -> np.ndarray:
    """The shipped verifier's scores (head + weighted combiner), through the runtime code."""
    from reprise._verify.head import InteractionHead
    from reprise._verify.model import Combiner

    head = models["head"]
    blend = (COMBINER_WEIGHT, Combiner.from_dict(models["align"]))
    runtime = InteractionHead.from_arrays(
        arrays, np.asarray(head["mean"]), np.asarray(head["scale"]), {0.9: 0.0}, blend
    )
    a, b = word_items(pairs, table)
    out = [runtime.score(_words(ib), _words(ia), row) for ia, ib, row in zip(a, b, x, strict=True)]
    return masked(x, np.asarray(out))


def _words(item: tuple[np.ndarray, np.ndarray]) -> Words:
    """A `word_items` entry as the runtime head reads it (the words themselves unused)."""
    vectors, content = item
    return Words(("",) * len(vectors), vectors, tuple(bool(c) for c in content))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reprise-verifier-cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "reprise" / "_data" / "verifier.json")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument(
        "--ceiling", type=float, default=CEILING, help="the cache threshold the cut-offs assume"
    )
    parser.add_argument("--report", type=Path, default=None, help="also write tables here")
    args = parser.parse_args(argv)
    sets = datasets(args.data)
    if not args.report:
        sets = {"qqp": sets["qqp"]}
    x_of = {
        name: feature_matrix(pairs, token_cache(name, pairs, args.cache))
        for name, pairs in sets.items()
    }
    qqp = sets["qqp"]
    y = np.array([p.label for p in qqp], dtype=np.float64)
    folds = np.array([fold_of(p.group, p.text_a) for p in qqp])
    models, raw = train(x_of["qqp"], y, folds, args.ceiling, args.l2)
    table = token_cache("qqp", qqp, args.cache)
    models["head"], arrays, head_oof = train_head(
        x_of["qqp"], y, folds, word_items(qqp, table), args.ceiling, raw["align"]
    )
    meta = {
        "trained_on": "qqp_dev.jsonl",
        "folds": FOLDS,
        "grouped_by": "group",
        "l2": args.l2,
        "ceiling": args.ceiling,
        "zone": ZONE,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "models": models}, indent=1) + "\n")
    np.savez_compressed(args.out.with_name("verifier_head.npz"), **arrays)
    print(f"wrote {args.out}")
    if args.report:
        scores = {"qqp": head_oof}
        for name in sets.keys() - {"qqp"}:
            table = token_cache(name, sets[name], args.cache)
            scores[name] = shipped_scores(sets[name], x_of[name], table, models, arrays)
        args.report.write_text(report(sets, x_of, args.ceiling, args.l2, scores))
        print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
