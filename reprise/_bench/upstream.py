"""A fake OpenAI backend for benchmarks: chat completions after a fixed latency.

    python -m reprise._bench.upstream --port 9000 --latency 0.2 [--embeddings local]

It answers any path ending in /chat/completions with a completion naming the
prompt, after `--latency` seconds (the model's time, asleep, so it costs no CPU).
With `--embeddings local` it also serves /embeddings with the local model, the
OpenAI-compatible endpoint that peers needing one share with Reprise's model.
Run it as its own process, so that it never competes with what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reprise._protocols import Embedder


def create_app(latency: float, embedder: Embedder | None = None) -> Starlette:
    calls = {"chat": 0, "embeddings": 0}

    async def chat(request: Request) -> Response:
        body = await request.json()
        calls["chat"] += 1
        await asyncio.sleep(latency)
        return JSONResponse(_completion(body))

    async def embeddings(request: Request) -> Response:
        if embedder is None:
            return JSONResponse({"error": {"message": "no embedder configured"}}, 404)
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        calls["embeddings"] += 1
        vectors = await embedder.embed([str(t) for t in texts])
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        model = body.get("model", "local")
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

    async def stats(request: Request) -> Response:
        return JSONResponse(calls)

    async def dispatch(request: Request) -> Response:
        path = request.url.path
        if path.endswith("/chat/completions") and request.method == "POST":
            return await chat(request)
        if path.endswith("/embeddings") and request.method == "POST":
            return await embeddings(request)
        if path == "/_stats":
            return await stats(request)
        if path in ("/healthz", "/health"):
            return JSONResponse({"ok": True})
        return JSONResponse({"error": {"message": f"no route {path}"}}, 404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if embedder is not None:
            await embedder.aclose()

    routes = [Route("/{path:path}", dispatch, methods=["GET", "POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or [{}]
    prompt = str(messages[-1].get("content", ""))
    content = f"Answer to: {prompt}"
    return {
        "id": "chatcmpl-" + hashlib.sha256(f"{prompt}{time.time_ns()}".encode()).hexdigest()[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 4, "total_tokens": 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per completion")
    parser.add_argument("--embeddings", default=None, help="serve /embeddings with this embedder")
    args = parser.parse_args()
    embedder = None
    if args.embeddings:
        from reprise._backends import make_embedder

        embedder = make_embedder(args.embeddings)
    import uvicorn

    app = create_app(args.latency, embedder)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
