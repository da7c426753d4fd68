"""An OpenAI-compatible embeddings endpoint for the local model.

    reprise model serve --port 8001 [--model-dir D] [--threads N]
    (or python -m reprise._embedders.serve, same options)
    curl localhost:8001/v1/embeddings -d '{"input": ["hello"], "model": "all-MiniLM-L6-v2"}'

One model process can then serve several gateway replicas, and tools that
only speak the embeddings API (LiteLLM-style proxies, the benchmark's peers)
can use the same vectors as Reprise. Concurrent requests share model calls
through `LocalEmbedder`'s micro-batching. `encoding_format: "base64"` (what
the official openai SDK asks for) and `"float"` are both served.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reprise._exceptions import EmbedderError
from reprise._protocols import Embedder


def make_app(embedder: Embedder, *, model_name: str = "all-MiniLM-L6-v2") -> Starlette:
    """A Starlette app serving `POST /v1/embeddings` (and `/embeddings`) from `embedder`."""

    async def embeddings(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            texts = _inputs(body)
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            vectors = await embedder.embed(texts)
        except EmbedderError as exc:
            return _error(503, str(exc), "server_error")
        base64_wanted = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(v, base64_wanted)}
            for i, v in enumerate(vectors)
        ]
        tokens = sum(len(t.split()) for t in texts)  # a cheap estimate; nobody bills by it
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "local"}]}
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "dims": embedder.dims})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await embedder.aclose()

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _inputs(body: Any) -> list[str]:
    if not isinstance(body, dict) or "input" not in body:
        raise ValueError("the body must be a JSON object with an 'input'")
    texts = body["input"]
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("'input' must be a string or a list of strings (token ids unsupported)")
    if not texts:
        raise ValueError("'input' must not be empty")
    return texts


def _encode(vector: np.ndarray[Any, Any], as_base64: bool) -> str | list[float]:
    if as_base64:
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model-dir", default=None, help="sentence-transformers model dir")
    parser.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime threads (default: cores, up to 2)"
    )
    parser.add_argument("--log-level", default="warning")


def run(args: argparse.Namespace) -> int:
    """`reprise model serve`: the local model behind uvicorn until interrupted."""
    import uvicorn

    from reprise._embedders.local import LocalEmbedder

    model_dir = Path(args.model_dir) if args.model_dir else None
    embedder = LocalEmbedder(model_dir, threads=args.threads)
    app = make_app(embedder, model_name=embedder.spec.name)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reprise._embedders.serve", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
