"""The fake OpenAI / Azure OpenAI backend of the tests, the benchmarks and the demo.

    python -m reprise.testing --port 9000 [--latency 0.0] [--embeddings local]

Run as its own process (`FakeUpstreamServer`), so that it never competes with
what it measures, or in-process as an ASGI app (`FakeUpstream(...).app`, the demo).
Answers are derived from the prompt, so a test knows what a fresh answer looks
like and whether it came from the backend: by default the content names the last
user message and how many times the backend has been asked it
(`Answer to 'prompt' (call 1).`); `answer=` replaces that text. Markers in the
last user message make it misbehave:

    [status:500]   answer with that HTTP status and an OpenAI-shaped error
    [fail-first:500]  the first call of this prompt answers that status, later ones succeed
    [cut]          stream two chunks, then drop the connection (no [DONE])
    [truncate]     stream two chunks, then end the body cleanly without [DONE]
    [sleep:0.5]    wait that many seconds before answering
    [tool]         answer with a tool call instead of text
    [hold]         stream two chunks, then wait for `POST /_control/release`

Any path ending in /chat/completions, /completions, /responses, /embeddings or
/models is served (OpenAI's /v1/... and Azure's /openai/deployments/{d}/...).
Embeddings are random unit vectors seeded by the text, or the given embedder's
(`--embeddings local`: the local model, for peers that need an embeddings endpoint).
`GET /_control/stats` reports the completions served (`total`), the calls per
prompt, the embeddings requests and the headers of the last request;
`POST /_control/reset` forgets them. `GET /healthz` answers once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reprise._protocols import Embedder

_MARK = re.compile(r"\[(status|sleep|fail-first):([0-9.]+)\]")
# Enough for a benchmark's burst of connections: the kernel drops SYNs past it.
BACKLOG = 2048


def default_answer(prompt: str, call: int) -> str:
    """The text of a fresh answer: the prompt and how often the backend was asked it."""
    return f"Answer to {prompt!r} (call {call})."


class Marked:
    """An ASGI app whose every response carries `x-fake-upstream: true`, errors included
    (outside Starlette's own error handler), so that a test tells the backend's
    answers from the gateway's own."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def marked(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-fake-upstream", b"true")]
            await send(message)

        await self.app(scope, receive, marked)


class FakeUpstream:
    def __init__(
        self,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        *,
        answer: Callable[[str, int], str] = default_answer,
        embedder: Embedder | None = None,
    ) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.answer = answer
        self.embedder = embedder
        self.calls: Counter[str] = Counter()
        self.embedding_calls = 0
        self.last_headers: dict[str, str] = {}
        self.release = asyncio.Event()
        self.app = Marked(
            Starlette(
                routes=[
                    Route("/healthz", self.healthz, methods=["GET"]),
                    Route("/_control/stats", self.stats, methods=["GET"]),
                    Route("/_control/reset", self.reset, methods=["POST"]),
                    Route("/_control/release", self.release_held, methods=["POST"]),
                    Route("/{path:path}", self.serve, methods=["GET", "POST"]),
                ],
                lifespan=self._lifespan,
            )
        )

    @property
    def total_calls(self) -> int:
        """Completions asked for (chat, legacy and Responses), whatever their outcome."""
        return sum(self.calls.values())

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        if self.embedder is not None:
            await self.embedder.aclose()

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def stats(self, request: Request) -> Response:
        stats = {
            "total": self.total_calls,
            "calls": dict(self.calls),
            "embeddings": self.embedding_calls,
            "last_headers": self.last_headers,
        }
        # ASCII-escaped: a fuzzed prompt may hold a lone surrogate, which has no UTF-8.
        return Response(json.dumps(stats), media_type="application/json")

    async def release_held(self, request: Request) -> Response:
        self.release.set()
        return JSONResponse({"ok": True})

    async def reset(self, request: Request) -> Response:
        self.calls.clear()
        self.embedding_calls = 0
        return JSONResponse({"ok": True})

    async def serve(self, request: Request) -> Response:
        try:
            return await self._serve(request)
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
            # A request it cannot read (what a fuzzer sends through a proxied path) is
            # a 400, as from a real backend: a crash would also close the connection.
            return _error(400, f"fake upstream cannot read the request: {type(exc).__name__}")

    async def _serve(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        self.last_headers = dict(request.headers)
        if path.endswith("/models"):
            return JSONResponse(
                {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            )
        if path.endswith("/gzipped"):  # a compressed body, which a proxy must pass on as is
            payload = gzip.compress(json.dumps({"object": "gzipped"}).encode())
            headers = {"content-encoding": "gzip", "content-type": "application/json"}
            return Response(payload, headers=headers)
        body = json.loads(await request.body() or b"{}")
        model = _deployment(path) or body.get("model", "fake-model")
        if path.endswith("/embeddings"):
            self.embedding_calls += 1
            return JSONResponse(await self._embeddings(body, model))
        endpoint = _endpoint(path)
        if endpoint is None:
            return _error(404, f"fake upstream: no route {path}")
        prompt = _last_user_text(body, endpoint)
        self.calls[prompt] += 1
        marks = dict(_MARK.findall(prompt))
        await asyncio.sleep(self.latency + float(marks.get("sleep", 0)))
        if "status" in marks:
            return _error(int(marks["status"]), "fake upstream failure on purpose")
        if "fail-first" in marks and self.calls[prompt] == 1:
            return _error(int(marks["fail-first"]), "fake upstream fails the first call")
        text = self.answer(prompt, self.calls[prompt])
        tool = "[tool]" in prompt
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._stream(endpoint, model, text, prompt, tool, include_usage)
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(_complete(endpoint, model, text, prompt, tool))

    async def _stream(
        self, endpoint: str, model: str, text: str, prompt: str, tool: bool, include_usage: bool
    ) -> AsyncIterator[bytes]:
        payload = _complete(endpoint, model, text, prompt, tool)
        chunks = _chunks(endpoint, payload, include_usage)
        cut = "[cut]" in prompt or "[truncate]" in prompt
        for i, chunk in enumerate(chunks):
            if "[hold]" in prompt and i == 2:
                await self.release.wait()
                self.release.clear()
            if cut and i == 2:
                if "[cut]" in prompt:
                    raise ConnectionAbortedError("fake upstream cuts the stream on purpose")
                return
            yield chunk
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)

    async def _embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        texts = body.get("input", [])
        texts = [str(t) for t in ([texts] if isinstance(texts, str) else texts)]
        if self.embedder is not None:
            vectors = [v.tolist() for v in await self.embedder.embed(texts)]
        else:
            vectors = [_seeded_vector(text) for text in texts]
        data = [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ]
        return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 1}}


def _endpoint(path: str) -> str | None:
    for suffix, name in (
        ("/chat/completions", "chat"),
        ("/completions", "completions"),
        ("/responses", "responses"),
    ):
        if path.endswith(suffix):
            return name
    return None


def _deployment(path: str) -> str | None:
    match = re.search(r"/deployments/([^/]+)/", path)
    return match.group(1) if match else None


def _last_user_text(body: dict[str, Any], endpoint: str) -> str:
    if endpoint == "completions":
        prompt = body.get("prompt", "")
        return prompt if isinstance(prompt, str) else json.dumps(prompt)
    items = body.get("messages") if endpoint == "chat" else body.get("input")
    if isinstance(items, str):
        return items
    for message in reversed(items or []):
        if message.get("role", "user") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _usage(prompt: str, text: str, endpoint: str) -> dict[str, int]:
    p, c = len(prompt.split()) + 5, len(text.split())
    if endpoint == "responses":
        return {"input_tokens": p, "output_tokens": c, "total_tokens": p + c}
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _complete(endpoint: str, model: str, text: str, prompt: str, tool: bool) -> dict[str, Any]:
    ident = hashlib.sha256(f"{time.time_ns()}{prompt}".encode()).hexdigest()[:12]
    usage = _usage(prompt, text, endpoint)
    created = int(time.time())
    if endpoint == "responses":
        item = {
            "id": f"msg_{ident}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        return {
            "id": f"resp_{ident}",
            "object": "response",
            "created_at": created,
            "status": "completed",
            "model": model,
            "output": [item],
            "usage": usage,
        }
    if endpoint == "completions":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None}
        choice["finish_reason"] = "stop"
        obj = "text_completion"
    else:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        if tool:
            message["content"] = None
            args = json.dumps({"query": prompt})
            fn = {"name": "lookup", "arguments": args}
            message["tool_calls"] = [{"id": f"call_{ident}", "type": "function", "function": fn}]
            finish = "tool_calls"
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        obj = "chat.completion"
    return {
        "id": f"cmpl-{ident}",
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def _chunks(endpoint: str, payload: dict[str, Any], include_usage: bool) -> list[bytes]:
    # Built independently of the gateway's replay code, so that the tests compare two
    # implementations of OpenAI's stream format rather than one with itself.
    def data(obj: Any) -> bytes:
        return f"data: {json.dumps(obj)}\n\n".encode()

    if endpoint == "responses":
        out = []
        for i, kind in enumerate(("response.created", "response.output_text.delta")):
            body = {"type": kind, "sequence_number": i, "response": {**payload, "status": "x"}}
            out.append(f"event: {kind}\n".encode() + data(body))
        text = payload["output"][0]["content"][0]["text"]
        delta = {"type": "response.output_text.delta", "sequence_number": 2, "delta": text}
        done = {"type": "response.completed", "sequence_number": 3, "response": payload}
        out.append(b"event: response.output_text.delta\n" + data(delta))
        out.append(b"event: response.completed\n" + data(done))
        return out
    head = {k: payload[k] for k in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk" if endpoint == "chat" else "text_completion"
    choice = payload["choices"][0]
    out = []
    if endpoint == "chat":
        message = choice["message"]
        out.append(data({**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
        for word in re.findall(r"\S+\s*", message["content"] or ""):
            out.append(data({**head, "choices": [{"index": 0, "delta": {"content": word}}]}))
        for call in message.get("tool_calls") or []:
            fn = call["function"]
            first = {"index": 0, "id": call["id"], "type": "function"}
            first["function"] = {"name": fn["name"], "arguments": ""}
            rest = {"index": 0, "function": {"arguments": fn["arguments"]}}
            for part in (first, rest):
                delta = {"tool_calls": [part]}
                out.append(data({**head, "choices": [{"index": 0, "delta": delta}]}))
        end = {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}
    else:
        for word in re.findall(r"\S+\s*", choice["text"]):
            out.append(data({**head, "choices": [{"index": 0, "text": word}]}))
        end = {"index": 0, "text": "", "finish_reason": choice["finish_reason"]}
    out.append(data({**head, "choices": [end]}))
    if include_usage:
        out.append(data({**head, "choices": [], "usage": payload["usage"]}))
    out.append(b"data: [DONE]\n\n")
    return out


def _seeded_vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return [float(x) for x in vector]


def _error(status: int, message: str) -> Response:
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--embeddings", default=None, help="serve /embeddings with this embedder")
    args = parser.parse_args()
    embedder = None
    if args.embeddings:
        from reprise._plugins import make_embedder

        embedder = make_embedder(args.embeddings)
    app = FakeUpstream(args.latency, args.chunk_delay, embedder=embedder).app
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=BACKLOG,
    )
