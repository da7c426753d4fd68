"""Reprise, LiteLLM and GPTCache side by side: same upstream, same model, same prompts.

    .venv/bin/python benchmarks/peers/run_peers.py --out benchmarks/results \
        --pairs ../shared/data/qqp_dev.jsonl --pairs-limit 200

Shared by every system: the fake upstream (`reprise.testing`, its own
process), all-MiniLM-L6-v2 (in process for Reprise; for the peers, the same model
behind an OpenAI-compatible /v1/embeddings endpoint, as they require one), and
one Valkey with RediSearch (LiteLLM's redis-semantic cache). Each peer runs from
its own virtualenv (`benchmarks/peers/setup.sh`).

Speed: `reprise._bench.speed.measure`, the driver `reprise bench speed` uses, at
cosine distance 0.03 for everyone (rewordings hit, distinct prompts miss), the
same levels, requests and upstream latency.
Quality: per pair, an empty cache, `text_a` sent (a miss, stored), then `text_b`;
a hit is an answer naming `text_a`. Reprise's quality comes from `reprise bench
quality` on the same sample of pairs (same selection function and seed).

Threshold scales (converted to cosine distance d, the unit Reprise uses):
    LiteLLM   similarity_threshold s   ->  d = 1 - s   (redisvl distance_threshold)
    GPTCache  similarity_threshold s   ->  d = 2 * (1 - s)   (FAISS squared L2 = 2d,
              SearchDistanceEvaluation scores 4 - L2^2, hit when score >= 4s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from tqdm import tqdm

from reprise._bench import report, speed
from reprise._bench.data import Pair, load_pairs
from reprise._bench.quality import select
from reprise.testing import FakeUpstreamServer, Server, ValkeyServer, free_port

HERE = Path(__file__).resolve().parent
LITELLM_KEY = "sk-bench-0123456789abcdef0123456789abcdef"
LITELLM_INDEX = "litellm_semantic_cache_index"
SPEED_DISTANCE = 0.03


def litellm_similarity(distance: float) -> float:
    return round(1.0 - distance, 6)


def gptcache_similarity(distance: float) -> float:
    return round(1.0 - distance / 2.0, 6)


@dataclass
class System:
    """A running cache: how to reach it, empty it, and tell a hit."""

    name: str
    chat_url: str
    headers: dict[str, str]
    clear: Callable[[], Awaitable[None]]
    version: str

    def target(self) -> speed.Target:
        return speed.Target(self.chat_url, lambda _level: self.headers, self.clear)


class LiteLLM(Server):
    start_timeout = 600.0  # its proxy imports for minutes on a busy machine

    def __init__(
        self, work: Path, upstream: str, embeddings: str, valkey_port: int, similarity: float
    ) -> None:
        config = work / f"litellm-{similarity}.yaml"
        config.write_text(
            json.dumps(
                {
                    "model_list": [
                        {
                            "model_name": speed.MODEL,
                            "litellm_params": {
                                "model": f"openai/{speed.MODEL}",
                                "api_base": upstream + "/v1",
                                "api_key": "fake",
                            },
                        },
                        {
                            "model_name": "local-embed",
                            "litellm_params": {
                                "model": "openai/local-embed",
                                "api_base": embeddings + "/v1",
                                "api_key": "fake",
                            },
                        },
                    ],
                    "general_settings": {"master_key": LITELLM_KEY},
                    "litellm_settings": {
                        "cache": True,
                        "cache_params": {
                            "type": "redis-semantic",
                            "redis_url": f"redis://127.0.0.1:{valkey_port}",
                            "similarity_threshold": similarity,
                            "redis_semantic_cache_embedding_model": "local-embed",
                        },
                    },
                },
                indent=1,
            )
        )
        port = free_port()
        command = [
            str(HERE / ".venv-litellm/bin/litellm"),
            "--config",
            str(config),
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        super().__init__(f"litellm-{similarity}", command, port, work)

    def ready(self) -> bool:
        try:
            url = self.url + "/health/liveliness"
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def gptcache(work: Path, upstream: str, embeddings: str, similarity: float) -> Server:
    port = free_port()
    command = [
        str(HERE / ".venv-gptcache/bin/python"),
        str(HERE / "gptcache_shim.py"),
        "--port",
        str(port),
        "--upstream",
        upstream,
        "--embeddings",
        embeddings,
        "--similarity-threshold",
        str(similarity),
    ]
    return Server(f"gptcache-{similarity}", command, port, work)


def peer_version(venv: str, package: str) -> str:
    python = HERE / f".venv-{venv}/bin/python"
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def litellm_system(server: Server, valkey_port: int) -> System:
    async def clear() -> None:
        client = redis.Redis(port=valkey_port)
        try:
            keys = list(client.scan_iter(f"{LITELLM_INDEX}*:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    return System(
        "LiteLLM",
        server.url + "/v1/chat/completions",
        {"Authorization": f"Bearer {LITELLM_KEY}"},
        clear,
        "litellm " + peer_version("litellm", "litellm"),
    )


def gptcache_system(server: Server) -> System:
    async def clear() -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(server.url + "/_control/clear", timeout=60)).raise_for_status()

    return System(
        "GPTCache",
        server.url + "/v1/chat/completions",
        {},
        clear,
        "gptcache " + peer_version("gptcache", "gptcache"),
    )


async def quality(system: System, pairs: list[Pair], progress: bool) -> dict[str, Any]:
    """Per pair: empty cache, send text_a, then text_b; a hit answers with text_a's answer."""
    hits = correct = 0
    async with httpx.AsyncClient(timeout=120, headers=system.headers) as client:
        for pair in tqdm(pairs, desc=system.name, disable=not progress):
            await system.clear()
            await _ask(client, system.chat_url, pair.text_a)
            answer = await _ask(client, system.chat_url, pair.text_b)
            # Identical texts count as a hit either way, as for every system.
            hit = answer.startswith(f"Answer to {pair.text_a!r} ")
            hits += hit
            correct += hit and pair.label == 1
    lookups, positives = len(pairs), sum(p.label for p in pairs)
    return {
        "lookups": lookups,
        "positives": positives,
        "hits": hits,
        "correct_hits": correct,
        "hit_rate": hits / lookups,
        "precision": correct / hits if hits else None,
        "recall": correct / positives if positives else None,
        "false_hit_rate": (hits - correct) / lookups,
    }


async def _ask(client: httpx.AsyncClient, url: str, text: str) -> str:
    body = {"model": speed.MODEL, "messages": [{"role": "user", "content": text}]}
    response = await client.post(url, json=body)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def run_peer(
    stack_factory: Callable[[float, str], Server],
    make_system: Callable[[Server], System],
    scale: Callable[[float], float],
    distances: list[float],
    pairs: list[Pair],
    args: argparse.Namespace,
    upstream_url: str,
    fast_url: str,
) -> dict[str, Any]:
    """Speed at the common distance, then quality at each distance, one server per setting."""
    out: dict[str, Any] = {"quality": []}
    progress = not args.no_progress
    settings = [SPEED_DISTANCE, *distances] if args.speed else distances
    for distance in dict.fromkeys(settings):
        started = time.monotonic()
        # Speed against the slow upstream; quality against the instant one.
        is_speed = distance == SPEED_DISTANCE and args.speed
        with stack_factory(scale(distance), upstream_url if is_speed else fast_url) as server:
            system = make_system(server)
            out["version"] = system.version
            print(
                f"{system.name} at s={scale(distance)} (d={distance}) up in "
                f"{time.monotonic() - started:.0f}s",
                file=sys.stderr,
            )
            if is_speed:
                plan = speed.levels(args.concurrency, args.requests)
                name = None if args.no_progress else system.name
                out["speed"] = asyncio.run(speed.measure(system.target(), upstream_url, plan, name))
                out["speed"]["distance"] = distance
            if distance in distances:
                began = time.monotonic()
                cell = asyncio.run(quality(system, pairs, progress))
                cell |= {
                    "distance": distance,
                    "native": scale(distance),
                    "seconds": round(time.monotonic() - began, 1),
                }
                out["quality"].append(cell)
                print(json.dumps(cell), file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--pairs", required=True, help="QQP-style JSONL")
    parser.add_argument("--pairs-limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--requests", type=int, action="append", default=[], help="as `reprise bench speed`"
    )
    parser.add_argument("--concurrency", type=int, action="append", default=[])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--no-speed", dest="speed", action="store_false", help="quality only")
    parser.add_argument(
        "--no-quality", dest="quality", action="store_false", help="speed only (no pairs)"
    )
    parser.add_argument(
        "--peer", action="append", choices=["litellm", "gptcache", "redisvl"], default=[]
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    # LiteLLM would fetch its model price list from GitHub at start-up.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    pairs = select(load_pairs(args.pairs), limit=args.pairs_limit, fold=None, seed=args.seed)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "pairs": {
            "file": args.pairs,
            "limit": args.pairs_limit,
            "seed": args.seed,
            "count": len(pairs),
        },
        "latency_s": args.latency,
        "machine": report.machine(),
        "load_average": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "systems": {},
    }
    with ExitStack() as stack:
        work = Path(stack.enter_context(_tempdir()))
        upstream = stack.enter_context(FakeUpstreamServer(work, args.latency))
        fast = stack.enter_context(FakeUpstreamServer(work, 0.0))
        fast.name = "upstream-fast"
        embeddings = stack.enter_context(FakeUpstreamServer(work, 0.0, embeddings="local"))
        valkey = stack.enter_context(ValkeyServer(log_dir=work))
        for peer in args.peer or ["litellm", "gptcache", "redisvl"]:
            if peer == "redisvl":
                if args.speed:
                    plan = speed.levels(args.concurrency, args.requests)
                    result["systems"]["RedisVL check(), in-process"] = redisvl_check(
                        work, valkey.url, embeddings.url, plan[0][1]
                    )
            elif peer == "litellm":
                result["systems"]["LiteLLM"] = run_peer(
                    lambda s, up: LiteLLM(work, up, embeddings.url, valkey.port, s),
                    lambda server: litellm_system(server, valkey.port),
                    litellm_similarity,
                    [0.1] if args.quality else [],
                    pairs,
                    args,
                    upstream.url,
                    fast.url,
                )
            else:
                result["systems"]["GPTCache"] = run_peer(
                    lambda s, up: gptcache(work, up, embeddings.url, s),
                    gptcache_system,
                    gptcache_similarity,
                    [0.1] if args.quality else [],
                    pairs,
                    args,
                    upstream.url,
                    fast.url,
                )
            (out_dir / "peers.json").write_text(json.dumps(result, indent=1), "utf-8")
    print(f"wrote {out_dir / 'peers.json'}", file=sys.stderr)
    return 0


def redisvl_check(work: Path, redis_url: str, embeddings_url: str, count: int) -> dict[str, Any]:
    """RedisVL's library lookup, one at a time (`redisvl_check.py`, in the LiteLLM venv)."""
    originals, rewordings = speed.prompts("redisvl", count)
    prompts = work / "redisvl-prompts.json"
    prompts.write_text(json.dumps({"originals": originals, "rewordings": rewordings}), "utf-8")
    command = [str(HERE / ".venv-litellm/bin/python"), str(HERE / "redisvl_check.py")]
    command += ["--redis-url", redis_url, "--embeddings", embeddings_url]
    command += ["--prompts", str(prompts), "--distance", str(SPEED_DISTANCE)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    workloads = {w: {"1": found[w]} for w in ("exact", "semantic")}
    return {"version": found["version"], "speed": {"workloads": workloads}, "quality": []}


def _tempdir() -> Any:
    import tempfile

    return tempfile.TemporaryDirectory(prefix="reprise-peers-")


if __name__ == "__main__":
    sys.exit(main())
