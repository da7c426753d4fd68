"""Redis store vs embedded store: lookup latency and near-duplicate recall.

    .venv/bin/python benchmarks/bench_redis.py            # 10k and 100k, writes benchmarks/redis.md
    .venv/bin/python benchmarks/bench_redis.py --embed-only

The corpus is real text: every question of QQP dev, the sentences of STS-B,
SICK and MRPC, and (to reach 100k) pairs of QQP questions joined into one
two-question prompt, which is how users often write. The queries are the
second questions of QQP duplicate pairs whose first question is cached and
which are themselves left out of the index: each query has a true near
duplicate in the store, the case a semantic cache exists for.

Recall@k is measured against exact brute-force search over the same vectors
(numpy), so it is the store's ANN recall, not the embedder's quality. All
entries share one partition, the worst case for the partition pre-filter.
Embeddings are cached under benchmarks/.cache/ (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reprise._bench.data import qqp_texts_and_duplicates, shared_data_dir
from reprise._bench.vectors import fingerprint
from reprise._embedders.local import LocalEmbedder
from reprise._protocols import Entry, VectorStore
from reprise._request import prompt_key
from reprise._stores.embedded import EmbeddedStore
from reprise._stores.redis import RedisStore
from reprise.testing import ValkeyServer

ROOT = Path(__file__).resolve().parents[1]
DATA = shared_data_dir()
CACHE = ROOT / "benchmarks" / ".cache"
QUERIES = 1000
SEED = 7
CHUNK = 4096
Array = np.ndarray[Any, np.dtype[Any]]
NOTES = """
## Reading it, and the defaults it set

- **Hybrid policy: RediSearch's own choice (`auto`).** With the partition filter
  matching almost the whole index, RediSearch brute-forces it at 10k (EF_RUNTIME has
  no effect, recall is exact, ~16 ms on this loaded machine) and switches to
  HNSW-then-filter at 100k (EF_RUNTIME matters). For a small partition it
  brute-forces the partition, which is exact and fast. Forcing `BATCHES` is faster
  for a big partition at 10k but loses recall@5 in small partitions (0.993 at
  100k), so the store leaves the choice to RediSearch (`hybrid_policy=None`).
- **EF_RUNTIME = 100** (`HNSW_EF_RUNTIME`): the smallest swept value with
  near-duplicate recall@1 >= 0.995 and recall@5 >= 0.995 in every partition at
  100k. EF_RUNTIME=10 misses the nearest entry for 0.6 % of queries (recall@1
  0.994); 100 costs a few ms more. Each cell is 500 queries, so recall@1 = 1.0000
  means no miss in 500 (a miss rate below 0.6 % at 95 % confidence).
- **M = 16, EF_CONSTRUCTION = 200** (RediSearch's defaults): they reach that recall,
  so there was no reason to pay the memory (M) or insert time (EF_CONSTRUCTION)
  of larger graphs.
- **Exact tier**: one `HGETALL`, ~0.2-0.3 ms p50 over loopback TCP, independent of
  the index size; the embedded store answers from memory in ~0.1 ms.
- **Memory**: ~2.1 KB of hash per entry (1,536 B of float32 vector, the short
  prompt and answer of this corpus, field names and Redis overhead) plus ~2.1 KB
  of index (HNSW graph with M=16, its vector copy, the TAG). Add the size of your
  prompts and responses to the hash figure.
- **Load** is one `upsert` (MULTI: HSET, PEXPIREAT/PERSIST) per entry, 64 in
  flight; the time is Redis inserting into the HNSW graph, single-threaded.
- Latencies come from a 2-core machine shared with other jobs (load average ~10
  during the run), so p99 is mostly scheduling noise; compare rows, not absolutes.
"""


def _qqp() -> tuple[list[str], list[tuple[str, str]]]:
    return qqp_texts_and_duplicates(DATA / "qqp_dev.jsonl")


def _tsv_columns(path: Path, columns: Sequence[int], skip_header: bool) -> list[str]:
    out: list[str] = []
    with path.open(encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if skip_header:
            next(reader, None)
        for row in reader:
            out.extend(row[c].strip() for c in columns if c < len(row) and row[c].strip())
    return out


def _other_sentences() -> list[str]:
    return [
        *_tsv_columns(DATA / "stsb" / "sts-train.csv", (5, 6), False),
        *_tsv_columns(DATA / "stsb" / "sts-dev.csv", (5, 6), False),
        *_tsv_columns(DATA / "sick" / "SICK_train.txt", (1, 2), True),
        *_tsv_columns(DATA / "sick" / "SICK_trial.txt", (1, 2), True),
        *_tsv_columns(DATA / "mrpc" / "msr_paraphrase_train.txt", (3, 4), True),
    ]


def corpus(size: int) -> tuple[list[str], list[str]]:
    """`size` texts to index and the queries; query i is a duplicate of text i."""
    rng = random.Random(SEED)
    questions, dups = _qqp()
    rng.shuffle(dups)
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for a, b in dups:  # one query per cached question, no text on both sides
        if a not in seen and b not in seen:
            pairs.append((a, b))
            seen.update((a, b))
        if len(pairs) == QUERIES:
            break
    queries = {b for _, b in pairs}
    targets = [a for a, _ in pairs]
    pool = [t for t in dict.fromkeys([*questions, *_other_sentences()]) if t not in seen]
    rng.shuffle(pool)
    while len(pool) + len(targets) < size:  # two-question prompts, from real questions
        a, b = rng.sample(questions, 2)
        if a not in queries and b not in queries:
            pool.append(f"{a} {b}")
    texts = targets + pool[: size - len(targets)]
    return texts, [b for _, b in pairs]


def embed(texts: list[str], first: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Embeddings of `texts` with the local model, memoised on disk by text.

    Texts another benchmark already embedded with the same model (its memo in
    benchmarks/.cache/vectors-<model>.npz) are taken from there. The rest are
    embedded in chunks saved as they finish, so a long first run can resume,
    and sorted by length, since a batch is padded to its longest text.
    """
    return asyncio.run(_embed_memoised(texts, first))


async def _embed_memoised(texts: list[str], first: int) -> Array:
    embedder = LocalEmbedder(threads=2, max_batch=128)
    name = f"vectors-{fingerprint(embedder)}.npz"
    mine = CACHE / "bench_redis" / name
    memo = _load_memo(mine)
    # `first` texts go first, so the smaller sizes can be measured while the rest embeds.
    rank = {t: i >= first for i, t in reversed(list(enumerate(texts)))}
    pending = sorted(rank, key=lambda t: (rank[t], len(t)))
    done = 0
    try:
        while True:
            memo.update(_load_memo(CACHE / name))  # another benchmark may have saved meanwhile
            pending = [t for t in pending if _text_key(t) not in memo]
            if not pending:
                break
            chunk = pending[:CHUNK]
            vectors = [await embedder.embed(chunk[i : i + 256]) for i in range(0, len(chunk), 256)]
            memo.update(zip(map(_text_key, chunk), np.concatenate(vectors), strict=True))
            _save_memo(mine, memo)
            done += len(chunk)
            print(f"embedded {done}, {len(pending) - len(chunk)} to go", file=sys.stderr)
    finally:
        await embedder.aclose()
    return np.stack([memo[_text_key(t)] for t in texts]).astype(np.float32)


def _text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:16]  # as reprise._bench.vectors keys them


def _load_memo(path: Path) -> dict[bytes, Array]:
    if not path.is_file():
        return {}
    with np.load(path) as saved:
        return {bytes(k): v for k, v in zip(saved["keys"], saved["vectors"], strict=True)}


def _save_memo(path: Path, memo: dict[bytes, Array]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.array(list(memo), dtype="S16"), vectors=np.stack(list(memo.values())))
    tmp.replace(path)


# (hybrid policy, EF_RUNTIME values): EF only matters where HNSW runs, and RediSearch's
# own choice ("auto") brute-forces some partitions, where a sweep would only cost time.
SWEEP: tuple[tuple[str | None, tuple[int, ...]], ...] = (
    (None, (10, 100)),
    ("BATCHES", (10, 20, 50, 100, 200)),
)
K = 5
SMALL_SHARE = 50  # one entry in 50 is in the small partition


def partition_of(i: int) -> str:
    """Queries alternate between the partitions; the rest is 98 % "big", 2 % "small"."""
    small = i % 2 == 0 if i < QUERIES else i % SMALL_SHARE == 0
    return "small" if small else "big"


def entries(texts: list[str], vectors: Array) -> list[Entry]:
    return [
        Entry(prompt_key(partition_of(i), t), partition_of(i), t, f"answer {i}", vectors[i])
        for i, t in enumerate(texts)
    ]


async def load(store: VectorStore, items: list[Entry]) -> float:
    """Upsert everything, 64 at a time (replicas write concurrently too); seconds taken."""
    t0 = time.perf_counter()
    for i in range(0, len(items), 64):
        await asyncio.gather(*(store.upsert(e) for e in items[i : i + 64]))
    return time.perf_counter() - t0


async def get_latency(store: VectorStore, items: list[Entry]) -> dict[str, float]:
    """p50/p99 of the exact tier, `get`, one call at a time (ms)."""
    ids = [items[i].id for i in random.Random(SEED).sample(range(len(items)), QUERIES)]
    get_ms = []
    for entry_id in ids:
        t0 = time.perf_counter()
        assert await store.get(entry_id) is not None
        get_ms.append((time.perf_counter() - t0) * 1e3)
    return {
        "get_p50": float(np.percentile(get_ms, 50)),
        "get_p99": float(np.percentile(get_ms, 99)),
    }


async def search_quality(
    store: VectorStore, items: list[Entry], queries: Array, vectors: Array, partition: str
) -> dict[str, float]:
    """p50/p99 of `search` (ms, one at a time) and recall@1/@K for the queries of `partition`.

    Recall counts a returned entry as right when it is no farther than the
    true k-th nearest of the partition (plus float noise): the uncased model
    gives some distinct texts identical vectors, and either of a tie is right.
    """
    members = np.array([i for i, e in enumerate(items) if e.partition == partition])
    position = {items[i].id: i for i in members}
    mine = [j for j in range(len(queries)) if partition_of(j) == partition]
    truth = np.sort(1.0 - queries[mine] @ vectors[members].T, axis=1)[:, :K] + 1e-5
    search_ms, hit1, hitk = [], 0, 0
    for q, bound in zip(queries[mine], truth, strict=True):
        t0 = time.perf_counter()
        matches = await store.search(q, partition, k=K, max_distance=2.0)
        search_ms.append((time.perf_counter() - t0) * 1e3)
        found = 1.0 - vectors[[position[m.entry.id] for m in matches]] @ q
        hit1 += bool(len(found)) and found[0] <= bound[0]
        hitk += int(np.sum(found <= bound[-1]))
    return {
        "partition": f"{partition} ({len(members):,})",
        "search_p50": float(np.percentile(search_ms, 50)),
        "search_p99": float(np.percentile(search_ms, 99)),
        "recall1": hit1 / len(mine),
        "recallk": hitk / (len(mine) * K),
    }


async def redis_memory(url: str, store: RedisStore, n: int) -> dict[str, float]:
    """Bytes per entry: the hash (MEMORY USAGE, sampled) and the index (FT.INFO)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{store.prefix}*", count=1000)][:500]
        sizes = [await client.memory_usage(k, samples=0) or 0 for k in keys]
        info = await client.ft(store.index_name).info()
    finally:
        await client.aclose()
    index_mb = float(info["total_index_memory_sz_mb"]) + float(info["vector_index_sz_mb"])
    return {"hash_bytes": float(np.mean(sizes)), "index_bytes": index_mb * 2**20 / n}


async def run_size(
    url: str, texts: list[str], vectors: Array, query_vectors: Array
) -> list[dict[str, Any]]:
    size = len(texts)
    items = entries(texts, vectors)
    rows: list[dict[str, Any]] = []

    def add(store: str, common: dict[str, Any], result: dict[str, Any]) -> None:
        rows.append({"store": store, "size": size, **common, **result})
        print(_row(rows[-1]), file=sys.stderr, flush=True)

    embedded = EmbeddedStore(":memory:")
    await embedded.open(vectors.shape[1])
    common = {"load_s": await load(embedded, items), **await get_latency(embedded, items)}
    for partition in ("big", "small"):
        add(
            "embedded",
            common,
            await search_quality(embedded, items, query_vectors, vectors, partition),
        )
    await embedded.aclose()

    store = RedisStore(url, prefix=f"bench{size}:", timeout=60.0)
    await store.open(vectors.shape[1])
    await store.clear()
    common = {"load_s": await load(store, items), **await get_latency(store, items)}
    common.update(await redis_memory(url, store, size))
    for partition in ("big", "small"):
        for policy, ef_values in SWEEP:
            for ef in ef_values:
                store.hybrid_policy, store.ef_runtime = policy, ef
                result = await search_quality(store, items, query_vectors, vectors, partition)
                add(f"redis {policy or 'auto'} EF_RUNTIME={ef}", common, result)
    await store.clear()
    await store.aclose()
    return rows


def _row(r: dict[str, Any]) -> str:
    memory = (
        f"{r['hash_bytes']:.0f} + {r['index_bytes']:.0f}" if "hash_bytes" in r else "in process"
    )
    return (
        f"| {r['store']} | {r['size']:,} | {r['partition']} | {r['get_p50']:.2f} "
        f"| {r['get_p99']:.2f} | {r['search_p50']:.2f} | {r['search_p99']:.2f} "
        f"| {r['recall1']:.4f} | {r['recallk']:.4f} | {r['load_s']:.0f} | {memory} |"
    )


def report(rows: list[dict[str, Any]]) -> str:
    head = (
        "| store | entries | partition searched | get p50 ms | get p99 ms | search p50 ms "
        f"| search p99 ms | recall@1 | recall@{K} | load s | bytes/entry (hash + index) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return (
        "# Redis store vs embedded store\n\n"
        "Produced by `.venv/bin/python benchmarks/bench_redis.py` (Valkey 9 + RediSearch 2.10 "
        "from the test wheels, on this machine, over loopback TCP). "
        f"{QUERIES} near-duplicate queries (QQP duplicates whose partner is cached), half "
        f"to a partition holding 98 % of the entries, half to one holding 2 %; k={K}; "
        "recall against exact brute-force search of the partition on the same "
        "all-MiniLM-L6-v2 vectors. Latencies are per call, one call at a time, client "
        "included (redis-py asyncio over TCP; the embedded store in process). "
        "`auto` lets RediSearch pick the hybrid policy per query; `BATCHES` forces "
        "HNSW-then-filter.\n\n" + head + "\n".join(_row(r) for r in rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # Smaller corpora are prefixes of the largest one, so one embedding run serves all.
    texts, queries = corpus(max(sizes))
    t0 = time.perf_counter()
    everything = embed(queries + texts, first=len(queries) + min(sizes))
    query_vectors, vectors = everything[: len(queries)], everything[len(queries) :]
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    if args.embed_only:
        return
    server = ValkeyServer().start()
    try:
        rows: list[dict[str, Any]] = []
        for size in sizes:
            rows += asyncio.run(run_size(server.url, texts[:size], vectors[:size], query_vectors))
    finally:
        server.close()
    text = report(rows)
    print(text)
    (ROOT / "benchmarks" / "redis.md").write_text(text + NOTES)


if __name__ == "__main__":
    main()
