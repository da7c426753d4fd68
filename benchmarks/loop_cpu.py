"""The gateway's own CPU per semantic hit, without the model (benchmarks/gateway.md, fifth pass).

    loop_cpu.py vectors                  once: the local model's outputs for every text used
    loop_cpu.py count [--store S] [--concurrency C]   instructions per hit, under callgrind
    loop_cpu.py budget [--store S]       CPU per hit at c=32 with the real model, from /proc

`count` runs `reprise serve` under callgrind with the local model's ONNX call replaced
by a table of its outputs (sentence and token vectors, computed once by `vectors`), so
everything but the model is counted: HTTP, JSON, the micro-batching and its thread hop,
the store, the verifier, the response. Instructions do not depend on the machine's load,
so two versions compare run to run. The load driver (`reprise._bench.load`, the one
`reprise bench speed` uses) runs in this process, outside callgrind. Each level stores
its prompts (misses), then sends their rewordings (semantic hits) and the prompts again
(exact hits); only the hits are counted, every thread of the gateway's process included.

`budget` runs the same workload on the real model at c=32 (no callgrind) and reads the
CPU each thread of the gateway spent (`/proc/<pid>/task`), Valkey's for Redis, and the
load driver's own; with the model's CPU per text in batches of 32 measured in this
process, the ceiling on hits/s those costs leave on this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np

from reprise._bench.load import chat_body, drive
from reprise._bench.speed import MODEL, prompts, write_config
from reprise.testing import FakeUpstreamServer, Server, ValkeyServer, free_port

HERE = Path(__file__).resolve().parent
VECTORS = HERE / ".cache" / "loop_cpu_vectors.pkl"
WARM_UP = [f"warm-up question number {i}" for i in range(8)]


ROUNDS = 5  # of `budget --table`: partitions of fresh prompts, one after the other


def tags(level: int, rounds: int = 1) -> list[str]:
    """The prompt tags of a level's rounds (`reprise bench speed`'s is the first)."""
    return [f"c{level}"] + [f"c{level}.{r}" for r in range(1, rounds)]


def texts_used(requests: int) -> list[str]:
    out = list(WARM_UP)
    for tag in tags(1) + tags(32, ROUNDS):
        originals, rewordings = prompts(tag, requests)
        out += originals + rewordings
    return out


# --- the table of model outputs -------------------------------------------------------


def make_vectors(path: Path) -> None:
    from reprise._embedders.local import LocalEmbedder

    texts = texts_used(400)

    async def go() -> dict[str, Any]:
        embedder = LocalEmbedder()
        try:
            found = await embedder.embed_tokens(texts)
        finally:
            await embedder.aclose()
        return dict(zip(texts, found, strict=True))

    table = asyncio.run(go())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL))
    print(f"wrote {len(table)} texts' vectors to {path}")


def serve_with_table(vectors: Path, serve_args: list[str]) -> int:
    """`reprise serve` whose local model answers from the table (run as the child)."""
    import reprise._embedders.local as local
    from reprise._cli import main

    table = pickle.loads(vectors.read_bytes())

    class TableModel:
        """`_OnnxModel`'s interface; what the model would return, looked up."""

        def __init__(self, spec: Any, onnx_path: Path, threads: int, batch: int) -> None:
            self.spec = spec

        def run(self, jobs: Sequence[Any]) -> list[Any]:
            results = []
            for job in jobs:
                found = [table.get(t) or _made_up(t, self.spec.dims) for t in job.texts]
                vectors = np.stack([f.sentence for f in found])
                results.append(local._Result(vectors, found if job.tokens else None))
            return results

    local._OnnxModel = TableModel  # type: ignore[misc,assignment]
    return main(["serve", *serve_args])


def _made_up(text: str, dims: int) -> Any:
    """A text not in the table (a warm-up's): a vector of its own, a token per word."""
    from reprise._embedders.local import TokenEmbeddings

    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    words = text.split()
    vectors = np.random.default_rng(seed).standard_normal((len(words), dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sentence = vectors.mean(axis=0)
    sentence /= np.linalg.norm(sentence)
    offsets, at = [], 0
    for word in words:
        at = text.index(word, at)
        offsets.append((at, at + len(word)))
        at += len(word)
    return TokenEmbeddings(words, offsets, vectors, sentence.astype(np.float32))


# --- driving a gateway ------------------------------------------------------------------


@contextmanager
def gateway(
    work: Path, store: str, upstream: str, *, callgrind: Path | None, table: bool
) -> Iterator[tuple[Server, ValkeyServer | None]]:
    with ExitStack() as stack:
        valkey = stack.enter_context(ValkeyServer(log_dir=work)) if store == "redis" else None
        cache_url = valkey.url if valkey else str(work / f"data-{time.monotonic_ns()}")
        if valkey and callgrind:  # commands 50 times slower than the default timeout allows
            cache_url += "?timeout=30"
        # `reprise bench speed`'s gateway, with a budget no lookup reaches under callgrind
        # (50 times slower).
        budget = 600_000 if callgrind else 250
        settings = SimpleNamespace(threshold=0.03, threads=None, lookup_budget_ms=budget)
        path = write_config(work, upstream, cache_url, settings)  # type: ignore[arg-type]
        port = free_port()
        serve = ["--config", str(path), "--port", str(port), "--log-level", "warning"]
        command = [sys.executable, __file__, "serve", "--vectors", str(VECTORS), "--", *serve]
        if not table:
            command = [sys.executable, "-m", "reprise", "serve", *serve]
        if callgrind is not None:
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={callgrind}",
                *command,
            ]
        server = Server("gateway", command, port, work, env={"PYTHONUNBUFFERED": "1"})
        server.start_timeout = 600.0
        stack.enter_context(server)
        deadline = time.monotonic() + 600
        health = server.url + "/healthz"
        while httpx.get(health, timeout=30).json()["caches"]["embeddings"] != "open":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cache never opened:\n{server.log()}")
            time.sleep(0.5)
        yield server, valkey


async def _post(url: str, texts: Sequence[str], level: int, tag: str) -> Counter[str]:
    headers = {"api-key": f"bench-{tag}", "X-Reprise-Trace": "true"}
    outcomes, _ = await drive(url, [chat_body(MODEL, t) for t in texts], level, headers)
    return Counter(o.cache for o in outcomes)


def _settle(server: Server) -> None:
    for _ in range(600):
        if httpx.get(server.url + "/healthz", timeout=30).json()["pending_stores"] == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("stores never finished")


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def count(args: argparse.Namespace) -> int:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loop-cpu-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        upstream = stack.enter_context(FakeUpstreamServer(work, 0.0))
        for store in args.store:
            out = Path(args.out) / f"callgrind.{args.name}.{store}"
            with gateway(work, store, upstream.url, callgrind=out, table=True) as (server, _):
                pid = server.pid
                assert pid is not None
                url = server.url + "/bench/chat/completions"
                asyncio.run(_post(url, WARM_UP, 4, "warm"))
                _settle(server)
                for level in args.concurrency:
                    originals, rewordings = prompts(f"c{level}", args.requests)
                    missed = asyncio.run(_post(url, originals, level, f"c{level}"))
                    _settle(server)
                    for workload, texts in (("semantic", rewordings), ("exact", originals)):
                        _callgrind(pid, "-z")
                        _callgrind(pid, "-i", "on")
                        got = asyncio.run(_post(url, texts, level, f"c{level}"))
                        _callgrind(pid, "-i", "off")
                        _callgrind(pid, "-d", f"{workload}-c{level}")
                        ir = _last_dump_total(out)
                        key = f"{store} {workload} c={level}"
                        results[key] = {"ir_per_hit": ir / len(texts), "cache": dict(got)}
                        print(
                            f"{key}: {ir / len(texts) / 1e3:.0f}k Ir per request "
                            f"({dict(got)}; misses before: {dict(missed)})",
                            flush=True,
                        )
    path = Path(args.out) / f"{args.name}.json"
    path.write_text(json.dumps(results, indent=1), "utf-8")
    return 0


def _last_dump_total(out: Path) -> int:
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    text = dumps[-1].read_text(errors="replace")
    match = re.search(r"^totals:\s+(\d+)", text, re.M)
    assert match is not None, dumps[-1]
    return int(match.group(1))


# --- the CPU budget at c=32 -------------------------------------------------------------


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of process `pid` (threads of one name summed): the
    event loop is the main thread; ONNX Runtime's threads keep the process's name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "loop" if task.name == str(pid) else (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return dict(out)


def _process(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def model_cpu_per_text() -> tuple[float, float]:
    """The local model in batches of 32 (as the bench's floor): CPU ms and wall ms per text."""
    from reprise._embedders.local import LocalEmbedder

    async def go() -> tuple[float, float]:
        embedder = LocalEmbedder()
        try:
            await embedder.embed([f"warm up {i}" for i in range(32)])
            batch, _ = prompts("batch", 32 * 8)
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(0, len(batch), 32):
                await embedder.embed(batch[i : i + 32])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await embedder.aclose()
        return cpu / len(batch) * 1e3, wall / len(batch) * 1e3

    return asyncio.run(go())


def budget(args: argparse.Namespace) -> int:
    level, requests = 32, args.requests
    model_cpu, model_wall = (1.0, 1.0) if args.table else model_cpu_per_text()
    print(
        f"model, batches of 32: {model_cpu:.2f} CPU ms and {model_wall:.2f} ms wall per text "
        f"({1e3 / model_wall:.0f} texts/s, {model_cpu / model_wall:.2f} cores)"
    )
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="loop-cpu-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        upstream = stack.enter_context(FakeUpstreamServer(work, 0.05))
        for store in args.store:
            with gateway(work, store, upstream.url, callgrind=None, table=args.table) as (
                server,
                vk,
            ):
                pid = server.pid
                assert pid is not None
                url = server.url + "/bench/chat/completions"
                asyncio.run(_post(url, WARM_UP, 4, "warm"))
                rounds = tags(level, ROUNDS if args.table else 1)
                for tag in rounds:
                    asyncio.run(_post(url, prompts(tag, requests)[0], level, tag))
                _settle(server)
                time.sleep(0.5)
                before, valkey0 = _threads(pid), _process(vk.pid) if vk and vk.pid else 0.0
                driver, wall = time.process_time(), time.perf_counter()
                got: Counter[str] = Counter()
                for tag in rounds:
                    got += asyncio.run(_post(url, prompts(tag, requests)[1], level, tag))
                driver, wall = time.process_time() - driver, time.perf_counter() - wall
                after, valkey1 = _threads(pid), _process(vk.pid) if vk and vk.pid else 0.0
                n = requests * len(rounds)
                per = {k: (after.get(k, 0.0) - before.get(k, 0.0)) * 1e3 / n for k in after}
                per = {k: v for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v > 0}
                per["valkey"] = (valkey1 - valkey0) * 1e3 / n
                per["load driver"] = driver * 1e3 / n
                hits = got.get("semantic", 0)
                total = sum(per.values())
                others = total - per.get("loop", 0.0) - per["load driver"]
                print(
                    f"{store}: {hits / wall:.0f} semantic hits/s ({dict(got)}), "
                    f"{hits / wall * model_wall / 1e3:.2f} of the batch rate; load "
                    f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
                )
                print("  CPU ms per request: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))
                ceiling = cores * 1e3 / total
                print(
                    f"  all {total:.2f} CPU ms per hit ({others:.2f} besides the loop and the "
                    f"driver): at most {ceiling:.0f} hits/s on {cores} cores, "
                    f"{ceiling * model_wall / 1e3:.2f} of the batch rate"
                )
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        parser = argparse.ArgumentParser()
        parser.add_argument("--vectors", type=Path, required=True)
        ours, rest = sys.argv[2:], []
        if "--" in ours:
            at = ours.index("--")
            ours, rest = ours[:at], ours[at + 1 :]
        return serve_with_table(parser.parse_args(ours).vectors, rest)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["vectors", "count", "budget"])
    parser.add_argument("--store", action="append", choices=["embedded", "redis"])
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument("--requests", type=int, default=384)
    parser.add_argument("--out", default=str(HERE / ".cache"))
    parser.add_argument("--name", default="loop_cpu")
    parser.add_argument(
        "--table", action="store_true", help="budget: the table of vectors for the model"
    )
    args = parser.parse_args()
    args.store = args.store or ["embedded", "redis"]
    args.concurrency = args.concurrency or [1, 32]
    if args.command == "vectors":
        make_vectors(VECTORS)
        return 0
    if not VECTORS.is_file() and args.command == "count":
        make_vectors(VECTORS)
    return count(args) if args.command == "count" else budget(args)


if __name__ == "__main__":
    sys.exit(main())
