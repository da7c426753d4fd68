"""RedisVL's SemanticCache.check() in-process: what a library lookup costs, without HTTP.

Run by run_peers.py with the LiteLLM virtualenv's Python (which has redisvl, never
reprise):

    .venv-litellm/bin/python redisvl_check.py --redis-url URL --embeddings URL \
        --prompts prompts.json --distance 0.03

`prompts.json` is {"originals": [...], "rewordings": [...]}. Each original is
stored, then checked again (RedisVL has no exact tier: an exact repeat is embedded
and searched like any prompt) and each rewording checked, one at a time. The
vectors come from the shared OpenAI-compatible /v1/embeddings endpoint, as for the
other peers. Prints JSON: the version, and p50 / p99 / slow outliers per workload.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from redisvl.extensions.cache.llm import SemanticCache
from redisvl.utils.vectorize import CustomTextVectorizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--embeddings", required=True, help="base URL of /v1/embeddings")
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--distance", type=float, default=0.03)
    args = parser.parse_args()
    prompts = json.loads(Path(args.prompts).read_text("utf-8"))
    client = httpx.Client(base_url=args.embeddings, timeout=60)

    def embed(text: str, **_: Any) -> list[float]:
        body = {"model": "local-embed", "input": [text]}
        response = client.post("/v1/embeddings", json=body)
        response.raise_for_status()
        return list(response.json()["data"][0]["embedding"])

    cache = SemanticCache(
        name="redisvl_check",
        distance_threshold=args.distance,
        vectorizer=CustomTextVectorizer(embed=embed),
        redis_url=args.redis_url,
        overwrite=True,
    )
    try:
        for text in prompts["originals"][:3]:  # warm up the connections
            cache.check(prompt=text)
        for text in prompts["originals"]:
            cache.store(prompt=text, response=f"Answer to {text!r}")
        result = {"version": "redisvl " + importlib.metadata.version("redisvl")}
        for workload, key in (("exact", "originals"), ("semantic", "rewordings")):
            times, hits = [], 0
            for text in prompts[key]:
                start = time.perf_counter()
                found = cache.check(prompt=text)
                times.append((time.perf_counter() - start) * 1e3)
                hits += bool(found)
            result[workload] = summary(times, hits)
    finally:
        cache.delete()
        client.close()
    print(json.dumps(result))


def summary(times: list[float], hits: int) -> dict[str, Any]:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "requests": len(times),
        "timed": len(times),
        "hits": hits,
        "p50_ms": p50,
        "p99_ms": p99,
        "slow": sum(t > 3 * p50 for t in times),
    }


if __name__ == "__main__":
    main()
