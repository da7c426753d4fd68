"""GPTCache behind a thin OpenAI-compatible endpoint, for the side-by-side benchmark.

Runs in its own virtualenv (`benchmarks/peers/setup.sh`), so it imports only
GPTCache, starlette, uvicorn and httpx, never reprise:

    .venv-gptcache/bin/python gptcache_shim.py --port P --upstream URL --embeddings URL \
        [--similarity-threshold 0.8]

GPTCache is set up as its README's similar-cache example: SQLite for the answers,
FAISS (IndexFlatL2) for the vectors, SearchDistanceEvaluation to score a candidate.
Its embedding function calls the OpenAI-compatible embeddings endpoint serving
the same local all-MiniLM-L6-v2 as Reprise, so no model is downloaded.

A chat completion looks up the last message's content (GPTCache's `last_content`
pre-processing); a miss is forwarded to the upstream and its answer put in the
cache. GPTCache's API is synchronous and keeps global state, so its calls are
serialised with a lock; the upstream call is not.

Scale: FAISS returns the squared L2 distance, 2 * cosine distance for unit
vectors; the evaluation scores 4 - that, and a hit needs score >= 4 * threshold.
So `similarity_threshold` s serves a cosine distance up to 2 * (1 - s):
the default 0.8 accepts distance 0.4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from gptcache import Cache, Config
from gptcache.adapter.api import get, put
from gptcache.manager import CacheBase, VectorBase, get_data_manager
from gptcache.processor.pre import get_prompt
from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DIMS = 384


class Shim:
    def __init__(self, upstream: str, embeddings: str, threshold: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.threshold = threshold
        self.embedder = httpx.Client(base_url=embeddings.rstrip("/"), timeout=60)
        self.client = httpx.AsyncClient(timeout=300)
        self.lock = threading.Lock()
        self.data_dir = ""
        self.cache = Cache()
        self.reset()

    def embed(self, text: str, **_: Any) -> np.ndarray:
        response = self.embedder.post("/v1/embeddings", json={"input": [text], "model": "local"})
        response.raise_for_status()
        return np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)

    def reset(self) -> None:
        """A fresh, empty cache (new SQLite file, new FAISS index)."""
        with self.lock:
            if self.data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = tempfile.mkdtemp(prefix="gptcache-shim-")
            manager = get_data_manager(
                CacheBase("sqlite", sql_url=f"sqlite:///{self.data_dir}/cache.db"),
                VectorBase(
                    "faiss", dimension=DIMS, index_path=str(Path(self.data_dir) / "faiss.index")
                ),
            )
            self.cache = Cache()
            self.cache.init(
                pre_embedding_func=get_prompt,
                embedding_func=self.embed,
                data_manager=manager,
                similarity_evaluation=SearchDistanceEvaluation(),
                config=Config(similarity_threshold=self.threshold),
            )

    def lookup(self, prompt: str) -> Any:
        with self.lock:
            return get(prompt, cache_obj=self.cache)

    def store(self, prompt: str, answer: str) -> None:
        with self.lock:
            put(prompt, answer, cache_obj=self.cache)

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        prompt = str(body["messages"][-1].get("content", ""))
        cached = await asyncio.to_thread(self.lookup, prompt)
        if cached is not None:
            return JSONResponse(json.loads(cached), headers={"x-cache": "HIT"})
        upstream = await self.client.post(self.upstream + "/v1/chat/completions", json=body)
        if upstream.status_code == 200:
            await asyncio.to_thread(self.store, prompt, upstream.text)
        return Response(
            upstream.content,
            upstream.status_code,
            media_type="application/json",
            headers={"x-cache": "MISS"},
        )

    async def clear(self, request: Request) -> Response:
        await asyncio.to_thread(self.reset)
        return JSONResponse({"cleared": True})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description="GPTCache behind an OpenAI-compatible shim")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="OpenAI-compatible base URL")
    parser.add_argument("--embeddings", required=True, help="embeddings endpoint base URL")
    parser.add_argument("--similarity-threshold", type=float, default=0.8)
    args = parser.parse_args()
    shim = Shim(args.upstream, args.embeddings, args.similarity_threshold)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", shim.chat, methods=["POST"]),
            Route("/chat/completions", shim.chat, methods=["POST"]),
            Route("/_control/clear", shim.clear, methods=["POST"]),
            Route("/healthz", shim.health, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
