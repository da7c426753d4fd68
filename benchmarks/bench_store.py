"""Embedded store: lookup latency, near-duplicate recall, restart time, exact vs HNSW.

    .venv/bin/python benchmarks/bench_store.py                  # 10k, 100k, 1M; writes store.md
    .venv/bin/python benchmarks/bench_store.py --sizes 10000 --no-write

Vectors. Every unique question of QQP dev is embedded once with the real
local model (all-MiniLM-L6-v2, cached under benchmarks/.cache/). Sizes beyond
the ~40k real questions are synthesised: a random real vector plus gaussian
noise (sigma drawn in [0.03, 0.06] per dimension), re-normalised, which puts
each synthetic vector 0.15-0.45 (cosine distance) from its parent: the store
becomes ~25 clusters per real question at 1M, dense and clustered like real
traffic, not uniform noise (which would make ANN search look easy).

Queries. (1) The second question of 1000 QQP duplicate pairs whose first
question is stored and which are themselves left out: real paraphrases,
embedded at lookup time by the real model. (2) 1000 stored vectors moved a
little (sigma 0.01, about 0.02 away): near-duplicates of a stored prompt.
Recall is measured against exact brute-force search (numpy) over the same
vectors, so it is the index's recall, not the model's quality. All entries
share one partition, the worst case.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprise._bench.data import qqp_texts_and_duplicates, shared_data_dir  # noqa: E402
from reprise._cache import SemanticCache, ThresholdVerifier  # noqa: E402
from reprise._embedders.local import LocalEmbedder  # noqa: E402
from reprise._protocols import KEY_LAYOUT  # noqa: E402
from reprise._request import prompt_key  # noqa: E402
from reprise._stores._index import ExactIndex, HNSWIndex, HNSWParams  # noqa: E402
from reprise._stores._sqlite import ROW, Database  # noqa: E402
from reprise._stores.embedded import EmbeddedStore  # noqa: E402

DATA = shared_data_dir()
CACHE = ROOT / "benchmarks" / ".cache"
OUT = ROOT / "benchmarks" / "store.md"
DIMS = 384
QUERIES = 1000
LOOSE = 0.17  # the cache's candidate radius at the default threshold 0.1
SEED = 7


# -- data ------------------------------------------------------------------------------


def qqp() -> tuple[list[str], list[tuple[str, str]]]:
    return qqp_texts_and_duplicates(DATA / "qqp_dev.jsonl")


async def embed_cached(texts: list[str]) -> np.ndarray:
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    path = CACHE / f"store-minilm-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    print(f"embedding {len(texts)} QQP questions once (cached at {path.name}) ...", flush=True)
    embedder = LocalEmbedder(threads=2, max_batch=128)
    parts = []
    for i in range(0, len(texts), 512):
        parts.append(await embedder.embed(texts[i : i + 512]))
    await embedder.aclose()
    vectors = np.concatenate(parts).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def normalise(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class Corpus:
    """Stored prompts and vectors for one size, and the two query sets."""

    def __init__(self, texts: list[str], vectors: np.ndarray, dups: list[tuple[str, str]]):
        rng = np.random.default_rng(SEED)
        index = {t: i for i, t in enumerate(texts)}
        picked = rng.choice(len(dups), size=len(dups), replace=False)
        pairs, held_out = [], set()
        for j in picked:
            a, b = dups[j]
            if a in held_out or b in held_out or len(pairs) == QUERIES:
                continue
            pairs.append((a, b))
            held_out.add(b)
        self.pairs = [(a, b) for a, b in pairs if a not in held_out]
        self.query_texts = [b for _, b in self.pairs]
        self.query_vectors = vectors[[index[b] for b in self.query_texts]]
        anchors = [a for a, _ in self.pairs]
        rest = [t for t in texts if t not in held_out and t not in set(anchors)]
        rng.shuffle(rest)
        self.real_texts = anchors + rest
        self.real_vectors = vectors[[index[t] for t in self.real_texts]]

    def take(self, n: int) -> tuple[list[str], np.ndarray]:
        """The first n stored prompts and their vectors (real first, then synthetic)."""
        real = min(n, len(self.real_texts))
        texts = list(self.real_texts[:real])
        out = np.empty((n, DIMS), dtype=np.float32)
        out[:real] = self.real_vectors[:real]
        rng = np.random.default_rng(SEED + 1)
        for start in range(real, n, 100_000):
            m = min(100_000, n - start)
            parents = rng.integers(0, len(self.real_texts), m)
            sigma = rng.uniform(0.03, 0.06, (m, 1)).astype(np.float32)
            noise = rng.standard_normal((m, DIMS), dtype=np.float32) * sigma
            out[start : start + m] = normalise(self.real_vectors[parents] + noise)
            texts.extend(
                f"{self.real_texts[p]} (variant {start + i})" for i, p in enumerate(parents)
            )
        return texts, out


def build_dir(path: Path, texts: list[str], vectors: np.ndarray) -> float:
    """Write the SQLite file the store will open; returns seconds spent."""
    marker = path / "built.json"
    if marker.exists() and json.loads(marker.read_text())["n"] == len(texts):
        return 0.0
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    db = Database(str(path))
    db.open(DIMS)
    db.migrate(KEY_LAYOUT)
    now = time.time()
    response = "A cached answer of typical length. " * 8
    for start in range(0, len(texts), 50_000):
        rows = (
            (
                i + 1,
                prompt_key("", texts[i]),
                "",
                texts[i],
                response,
                vectors[i].tobytes(),
                now,
                None,
                "{}",
                "",
            )
            for i in range(start, min(start + 50_000, len(texts)))
        )
        db.con.executemany(f"INSERT OR REPLACE INTO entries VALUES ({ROW})", rows)
        db.con.commit()
    db.close()
    marker.write_text(json.dumps({"n": len(texts)}))
    return time.perf_counter() - t0


# -- measuring ----------------------------------------------------------------------------


def pct(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def fmt(samples: list[float]) -> str:
    p50, p99 = pct(samples)
    return f"{p50:.3f} / {p99:.3f}"


async def timed(calls: list[Callable[[], Awaitable[Any]]]) -> tuple[list[float], list[Any]]:
    ms, out = [], []
    for call in calls:
        t0 = time.perf_counter()
        out.append(await call())
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms, out


def truth(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (indices, distances) by brute force, in blocks to bound memory."""
    ids = np.empty((len(queries), k), dtype=np.int64)
    dist = np.empty((len(queries), k), dtype=np.float32)
    for s in range(0, len(queries), 200):
        d = 1.0 - queries[s : s + 200] @ vectors.T
        top = np.argpartition(d, k, axis=1)[:, :k]
        order = np.take_along_axis(d, top, 1).argsort(axis=1)
        ids[s : s + 200] = np.take_along_axis(top, order, 1)
        dist[s : s + 200] = np.take_along_axis(d, ids[s : s + 200], 1)
    return ids, dist


def recall(found: list[list[float]], true_dist: np.ndarray, radius: float | None) -> float:
    """Share of true neighbours found, by distance (ties between equal vectors count)."""
    hits = total = 0
    for got, want in zip(found, true_dist, strict=True):
        want = want if radius is None else want[want <= radius]
        total += len(want)
        hits += sum(1 for j, d in enumerate(want) if j < len(got) and got[j] <= d + 1e-5)
    return hits / max(total, 1)


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


# -- sections -----------------------------------------------------------------------------


def index_kind(store: EmbeddedStore) -> str:
    if not store._partitions[("", "")].is_ann:
        return "exact"
    p = store.params
    default = p.expansion_add == HNSWParams().expansion_add
    return f"HNSW M={p.connectivity}" + ("" if default else f" ef_add={p.expansion_add}")


def make_queries(n: int, corpus: Corpus, vectors: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Stored rows to look up exactly, and the search queries: paraphrases + near-duplicates."""
    rng = np.random.default_rng(SEED + 2)
    sample = rng.choice(n, QUERIES, replace=False).tolist()
    noise = rng.standard_normal((QUERIES, DIMS), dtype=np.float32) * 0.01
    near = normalise(vectors[rng.choice(n, QUERIES)] + noise)
    return sample, np.concatenate([corpus.query_vectors, near])


async def bench_size(
    n: int, corpus: Corpus, rows: dict[str, list[str]], ef_sweep: bool, expansion_add: int
) -> None:
    texts, vectors = corpus.take(n)
    path = CACHE / f"store-{n}"
    write_s = build_dir(path, texts, vectors)
    shutil.rmtree(path / "ann", ignore_errors=True)  # measure a full rebuild first
    store = EmbeddedStore(path, expansion_add=expansion_add)
    t0 = time.perf_counter()
    await store.open(DIMS)
    open_s = time.perf_counter() - t0
    print(f"{n}: wrote SQLite in {write_s:.1f}s, open (rebuild) {open_s:.1f}s", flush=True)
    kind = index_kind(store)
    rebuilt = f"| {n:,} | {kind} | {open_s:.1f} | {rss_gb():.2f} "

    # The plain threshold verifier: this measures the store and the embedding, not a verifier.
    embedder = LocalEmbedder()
    cache = SemanticCache(
        store=store, embedder=embedder, score_threshold=0.1, verifier=ThresholdVerifier()
    )
    sample, queries = make_queries(n, corpus, vectors)
    prompts = [texts[i] for i in sample]
    cold, got = await timed([lambda t=t: cache.lookup(t) for t in prompts])
    assert all(h is not None and h.tier == "exact" for h in got)
    hot, _ = await timed([lambda t=t: cache.lookup(t) for t in prompts])
    misses, _ = await timed([lambda t=t: store.get(prompt_key("x", t)) for t in prompts])
    total, lookups = await timed([lambda t=t: cache.explain(t) for t in corpus.query_texts])
    embed = [lk.embed_ms for lk in lookups]
    search = [lk.search_ms for lk in lookups]
    hit_rate = sum(lk.hit is not None for lk in lookups) / len(lookups)
    in_radius, _ = await timed(
        [lambda q=q: store.search(q, "", k=5, max_distance=LOOSE) for q in queries]
    )
    rows["latency"].append(
        f"| {n:,} | {fmt(cold)} | {fmt(hot)} | {fmt(misses)} | {fmt(in_radius)} | {fmt(embed)} "
        f"| {fmt(search)} | {fmt(total)} | {hit_rate:.3f} |"
    )
    print(rows["latency"][-1], flush=True)
    await measure_recall(n, store, texts, vectors, queries, rows, ef_sweep)
    t0 = time.perf_counter()
    await cache.aclose()
    close_s = time.perf_counter() - t0
    again = EmbeddedStore(path, expansion_add=expansion_add)
    t0 = time.perf_counter()
    await again.open(DIMS)
    load_s = time.perf_counter() - t0
    assert len(await again.search(queries[-1], "", k=1, max_distance=0.1)) == 1
    again._saved = None  # leave no saved graph behind: the next run measures a rebuild
    await again.aclose()
    rows["restart"].append(f"{rebuilt}| {close_s:.1f} | {load_s:.1f} |")
    print(rows["restart"][-1], flush=True)


async def measure_recall(
    n: int,
    store: EmbeddedStore,
    texts: list[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    rows: dict[str, list[str]],
    ef_sweep: bool,
) -> None:
    """Recall vs brute force over the rows the store holds (a repeated text is one entry)."""
    seen: set[str] = set()
    for i, text in enumerate(texts):
        if text in seen:
            vectors[i] = 0.0  # at distance 1 from everything: out of every top 10
        seen.add(text)
    _, true_d = truth(vectors, queries, 10)
    index = store._partitions[("", "")]
    efs = (32, 64, 128, 192, 256) if ef_sweep and index.is_ann else (None,)
    for ef in efs:
        if ef is not None:
            index._impl._index.expansion_search = ef  # type: ignore[attr-defined]
        ms, found = await timed(
            [lambda q=q: store.search(q, "", k=10, max_distance=2.0) for q in queries]
        )
        got = [[m.distance for m in x] for x in found]
        measured = (
            f"{recall([g[:1] for g in got], true_d[:, :1], None):.4f} | "
            f"{recall(got, true_d, None):.4f} | {recall(got, true_d, LOOSE):.4f} | {fmt(ms)} |"
        )
        if ef is None or ef == store.params.expansion_search:
            rows["recall"].append(f"| {n:,} | {index_kind(store)} | {measured}")
            print(rows["recall"][-1], flush=True)
        if ef is not None:
            rows["ef"].append(f"| {n:,} | {index_kind(store)} | {ef} | {measured}")
            print(rows["ef"][-1], flush=True)
    if index.is_ann:
        index._impl._index.expansion_search = store.params.expansion_search  # type: ignore[attr-defined]


async def recall_only(n: int, corpus: Corpus, rows: dict[str, list[str]]) -> None:
    """Recall and the ef sweep again on the graph the last full run saved (no rebuild).

    That run's last open took the token and wrote nothing; the manifest's token
    is put back by hand, which is sound only because nothing wrote since the save.
    """
    texts, vectors = corpus.take(n)
    path = CACHE / f"store-{n}"
    token = json.loads((path / "ann" / "manifest.json").read_text())["token"]
    db = Database(str(path))
    db.open(DIMS)
    db.set_setting("ann_token", token)
    db.close()
    store = EmbeddedStore(path)
    await store.open(DIMS)
    _, queries = make_queries(n, corpus, vectors)
    await measure_recall(n, store, texts, vectors, queries, rows, ef_sweep=True)
    await store.aclose()


def crossover(
    corpus: Corpus, rows: dict[str, list[str]], sizes: list[int], connectivity: list[int]
) -> None:
    """Raw index search: brute force vs HNSW, at growing partition sizes."""
    texts, vectors = corpus.take(max(sizes))
    del texts
    rng = np.random.default_rng(SEED + 3)
    for n in sizes:
        sub = vectors[:n]
        queries = normalise(
            sub[rng.choice(n, 500)] + rng.standard_normal((500, DIMS), dtype=np.float32) * 0.03
        )
        exact = ExactIndex(DIMS, n)
        exact.add(np.arange(n, dtype=np.int64), sub)
        ms_exact = [_time(lambda q=q, x=exact: x.search(q, 10)) for q in queries]
        _, true_d = truth(sub, queries, 10)
        for m in connectivity:
            params = HNSWParams(0, m, 128, 128)
            t0 = time.perf_counter()
            hnsw = HNSWIndex(DIMS, params)
            hnsw.add(np.arange(n, dtype=np.int64), sub)
            build = time.perf_counter() - t0
            for ef in (64, 128):
                hnsw._index.expansion_search = ef
                found = [hnsw.search(q, 10)[1].tolist() for q in queries]
                ms = [_time(lambda q=q, h=hnsw: h.search(q, 10)) for q in queries]
                rows["crossover"].append(
                    f"| {n:,} | {fmt(ms_exact)} | M={m} ef={ef} | {fmt(ms)} | "
                    f"{recall([f[:1] for f in found], true_d[:, :1], None):.4f} | "
                    f"{recall(found, true_d, None):.4f} | {build:.1f} |"
                )
                print(rows["crossover"][-1], flush=True)


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


HEADERS = {
    "latency": (
        "| entries | exact hit, cold (SQLite read) | exact hit, hot (LRU) | exact miss | "
        "store.search within 0.17 | embedding | semantic search + fetch | semantic lookup total "
        "| hit rate @0.1 |\n|---|---|---|---|---|---|---|---|---|"
    ),
    "recall": (
        "| entries | index | recall@1 | recall@10 | recall@10 within 0.17 "
        "| store.search k=10 ms |\n"
        "|---|---|---|---|---|---|"
    ),
    "ef": (
        "| entries | index | ef (expansion_search) | recall@1 | recall@10 "
        "| recall@10 within 0.17 | ms |\n"
        "|---|---|---|---|---|---|---|"
    ),
    "crossover": (
        "| partition size | brute force ms | HNSW | HNSW ms | recall@1 | recall@10 | build s |\n"
        "|---|---|---|---|---|---|---|"
    ),
    "restart": (
        "| entries | index | open, rebuilding the index s | max RSS GB so far "
        "| close, saving the graph s | open, loading the saved graph s |\n|---|---|---|---|---|---|"
    ),
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--crossover",
        type=int,
        nargs="*",
        default=[1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000],
    )
    parser.add_argument("--connectivity", type=int, nargs="+", default=[16, 32])
    parser.add_argument(
        "--expansion-add",
        type=int,
        default=HNSWParams().expansion_add,
        help="graph build effort; lower builds faster at some recall (for a CPU-starved run)",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--recall-only", action="store_true", help="reuse the saved graph")
    args = parser.parse_args()
    texts, dups = qqp()
    corpus = Corpus(texts, await embed_cached(texts), dups)
    print(
        f"{len(corpus.real_texts)} real stored questions, "
        f"{len(corpus.query_texts)} paraphrase queries"
    )
    rows: dict[str, list[str]] = {k: [] for k in HEADERS}
    if args.crossover:
        crossover(corpus, rows, args.crossover, args.connectivity)
    for n in args.sizes:
        if args.recall_only:
            await recall_only(n, corpus, rows)
        else:
            ef_sweep = n == max(args.sizes)
            await bench_size(n, corpus, rows, ef_sweep, args.expansion_add)
    if not args.no_write:
        write_report(rows)


def write_report(rows: dict[str, list[str]]) -> None:
    """Merge this run's rows into earlier runs' (keyed by their first two cells), write store.md."""
    results = CACHE / "store-results.json"
    merged: dict[str, dict[str, str]] = json.loads(results.read_text()) if results.exists() else {}
    for section, new in rows.items():
        for row in new:
            cells = row.split("|")
            key = "|".join(cells[i].strip() for i in KEYS[section])
            merged.setdefault(section, {})[key] = row
    results.write_text(json.dumps(merged, indent=1))
    parts = [__doc__.split("\n\n", 2)[2].strip(), f"Machine: {os.cpu_count()} cores, shared."]
    for section, title in TITLES.items():
        table = "\n".join(sorted(merged.get(section, {}).values(), key=_size))
        parts.append(
            f"## {title}\n\nTimes in ms as p50 / p99 unless stated.\n\n{HEADERS[section]}\n{table}"
        )
    parts.append(CONCLUSIONS)
    OUT.write_text("# Embedded store benchmark\n\n" + "\n\n".join(parts) + "\n")
    print(OUT.read_text())


def _size(row: str) -> int:
    return int(row.split("|")[1].strip().replace(",", ""))


# The cells that name a row (the rest are measurements): a rerun replaces its rows.
KEYS = {"crossover": (1, 3), "latency": (1,), "recall": (1, 2), "ef": (1, 2, 3), "restart": (1, 2)}

TITLES = {
    "crossover": "Exact (numpy) vs HNSW search by partition size: where the switch goes",
    "latency": "Lookup latency through SemanticCache (one partition holds every entry)",
    "recall": "Recall of the store's search vs exact brute force",
    "ef": "HNSW search-time tuning (ef) by size",
    "restart": "Restart: rebuilding the index vs loading the saved graph",
}

CONCLUSIONS = """## Conclusions and the choices they made

The machine: 2 cores shared with five other engineers' jobs (load average
12-16 throughout), so p99 figures mostly measure the scheduler; p50 is the
better guide. Every figure is in-process (no HTTP).

- **Switch to HNSW above 10,000 entries per partition** (`ann_threshold`).
  Brute force is exact and as fast as HNSW up to 10k (0.9 ms p50 at 10k vs
  0.7 ms for HNSW); at 20k it jumped to 8 ms p50 here (a 30 MB matrix no
  longer sits in cache and memory bandwidth is shared), while HNSW stays
  near 1 ms. Below the threshold a graph would cost seconds of build CPU
  and some recall for nothing.
- **Exact search runs in blocks of 1024 rows** so OpenBLAS never wakes its
  worker threads for a lookup: a single multi-threaded matvec took 20-30 ms
  at p99 on this busy machine.
- **M (connectivity) = 16**: M = 32 gave no consistent recall gain at 10k-20k
  and searched and built slower.
- **ef (expansion_search) = 128, expansion_add = 128**: at 100k entries in
  one partition, recall@1 is 0.9995 and every true neighbour within the
  cache's candidate radius (0.17) is found (recall 1.0000); recall@10 over
  all neighbours is 0.996. ef = 256 buys recall@1 1.0 / recall@10 0.998 for
  about twice the search time; the cache serves the nearest candidate within
  the radius, which ef = 128 already finds, so 128 stays.
- **Recall falls slowly with size under the default build**: recall@1
  0.9995 at 100k and 0.998 at 300k (ef 128), 0.9992 within the candidate
  radius at 300k; ef 256 lifts 300k to 0.999 / 0.9995 for 1.5x the time.
  Search stays ~2 ms p50 at 300k, 3.8 ms p99 once the machine quietened.
- **1M in one partition, default build (run once the machine was idle,
  646 s to build)**: store.search within the candidate radius 1.07 ms p50 /
  2.0 ms p99; the semantic tier's search + fetch 1.7 / 3.1 ms; the whole
  semantic lookup including the embedding 9.9 / 15 ms. Latency target met.
  Recall at ef 128: recall@1 0.991, near-duplicates within the radius
  0.9948, a hair under the 0.995 target; ef 256 reaches 0.9961 within the
  radius (recall@1 0.9935) at 3.0 / 6.2 ms. Default kept at ef 128 (meets
  the p99 budget, and only one partition of a million is affected); set
  `EmbeddedStore(expansion_search=256)` for such a partition. The better
  fix, not yet measured, is more build effort (expansion_add, M) for large
  partitions: ef alone buys little (see the cheap build below).
- **A cheap build does not do at 1M**: rows marked `ef_add=32` (built while
  the machine was saturated) reach only recall@1 0.934 at ef 128 and 0.955
  at ef 256.
- **The exact tier meets its budget without I/O when hot**: a repeat served
  from the hot-entry LRU costs ~0.01 ms, a miss ~0.002 ms (row map only); a
  cold hit is one SQLite read on the store's thread, ~0.1 ms p50.
- **A semantic lookup is dominated by the embedding** (tens of ms here under
  load; see benchmarks/embedder.md for a quiet machine); the store's part is
  about a millisecond.
- **The HNSW graph is saved at a clean close and loaded on open**: at 100k
  entries a rebuild took 350 s here, saving 0.5 s and loading 1.9 s. SQLite
  stays the truth; a token written at the same close vouches for the files,
  and open deletes it before serving, so a crash means a rebuild, never a
  stale graph (reprise/_stores/_saved.py).
- **Memory**: per entry, the vector (1.5 KB at 384 dims) lives once, in the
  exact matrix or the graph, plus ~0.3 KB of graph links and ~0.2 KB of row
  map; prompts and responses stay on disk except the hot LRU (4096 entries).
"""


if __name__ == "__main__":
    asyncio.run(main())
