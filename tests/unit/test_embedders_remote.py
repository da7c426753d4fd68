"""The remote embedder against `httpx.MockTransport` and the in-process embeddings app."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from reprise._embedders.remote import RemoteEmbedder, embeddings_url
from reprise._embedders.serve import make_app
from reprise._exceptions import EmbedderError, EmbedderTimeout
from reprise._protocols import Embedder, Vector

KEY = "sk-secret-abcdef123456"
AZURE = "https://x.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-02-01"


def vector_for(text: str, dims: int = 4) -> list[float]:
    """A deterministic, unnormalised vector per text."""
    rng = np.random.default_rng(sum(text.encode()) + len(text))
    return [float(x) for x in rng.normal(size=dims) * 3]


class Server:
    """Records requests and answers like OpenAI (data deliberately in reverse order)."""

    def __init__(self, dims: int = 4) -> None:
        self.dims = dims
        self.requests: list[httpx.Request] = []

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        texts = json.loads(request.content)["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": vector_for(t, self.dims)}
            for i, t in enumerate(texts)
        ]
        return httpx.Response(200, json={"object": "list", "data": data[::-1]})


def remote(handler: Any, url: str = "https://api.example.com/v1/embeddings", **kw: Any) -> Any:
    return RemoteEmbedder(url, transport=httpx.MockTransport(handler), **kw)


async def test_posts_texts_and_returns_normalised_vectors_in_order() -> None:
    server = Server()
    emb = remote(server, headers={"Authorization": f"Bearer {KEY}"}, model="text-emb")
    texts = ["first", "second", "third"]
    vectors = await emb.embed(texts)
    await emb.aclose()
    assert isinstance(emb, Embedder)
    assert server.bodies() == [{"input": texts, "model": "text-emb"}]
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert str(server.requests[0].url) == "https://api.example.com/v1/embeddings"
    assert vectors.dtype == np.float32
    expected = np.array([vector_for(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-5)


async def test_azure_deployment_url_and_api_key_header() -> None:
    server = Server()
    emb = remote(server, url=AZURE, headers={"api-key": KEY})
    await emb.embed(["hello"])
    await emb.aclose()
    request = server.requests[0]
    assert str(request.url) == AZURE
    assert request.headers["api-key"] == KEY
    assert server.bodies() == [{"input": ["hello"]}]  # Azure names the model in the URL


@pytest.mark.parametrize(
    ("given", "posted"),
    [
        ("http://localhost:8001/v1", "http://localhost:8001/v1/embeddings"),
        ("http://localhost:8001/v1/", "http://localhost:8001/v1/embeddings"),
        ("http://h/v1/embeddings", "http://h/v1/embeddings"),
        (AZURE, AZURE),
    ],
)
def test_embeddings_url(given: str, posted: str) -> None:
    assert embeddings_url(given) == posted


def test_rejects_non_http_urls() -> None:
    with pytest.raises(EmbedderError, match="not an http"):
        RemoteEmbedder("ftp://example.com/embeddings")


async def test_dims_are_learned_from_the_first_answer() -> None:
    emb = remote(Server(dims=6))
    with pytest.raises(EmbedderError, match="dims="):
        _ = emb.dims
    assert (await emb.embed([])).shape == (0, 0)
    await emb.embed(["x"])
    assert emb.dims == 6
    assert (await emb.embed([])).shape == (0, 6)
    await emb.aclose()


async def test_given_dims_are_checked() -> None:
    emb = remote(Server(dims=6), dims=4)
    assert emb.dims == 4
    with pytest.raises(EmbedderError, match="6-dimensional vectors, expected 4"):
        await emb.embed(["x"])
    await emb.aclose()


async def test_http_errors_never_show_the_key() -> None:
    def unauthorized(request: httpx.Request) -> httpx.Response:
        message = f"Incorrect API key provided: {KEY}"
        return httpx.Response(401, json={"error": {"message": message, "type": "auth"}})

    emb = remote(unauthorized, url=f"https://h/v1/embeddings?key={KEY}", headers={"api-key": KEY})
    with pytest.raises(EmbedderError, match="HTTP 401: Incorrect API key") as info:
        await emb.embed(["x"])
    await emb.aclose()
    assert KEY not in str(info.value)
    assert "https://h/v1/embeddings" in str(info.value)


async def test_transport_errors_become_embedder_errors() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused (sent {KEY})")

    emb = remote(refused, headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(EmbedderError, match="cannot reach") as info:
        await emb.embed(["x"])
    await emb.aclose()
    assert KEY not in str(info.value)


async def test_a_slow_endpoint_times_out() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    emb = remote(slow, timeout=0.05)
    with pytest.raises(EmbedderTimeout, match=r"did not answer within 0\.05 s"):
        await emb.embed(["x"])
    await emb.aclose()


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [{"index": 0}]},
        {"nothing": []},
        {"data": [{"index": 0, "embedding": "not base64!"}]},
        {"data": [{"index": 0, "embedding": {"a": 1}}]},
        {"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]},
        {"data": []},
        {"data": [{"index": 0, "embedding": []}]},
        {"data": [{"index": 0, "embedding": [1.0, float("nan")]}]},
    ],
)
async def test_malformed_payloads_become_embedder_errors(payload: dict[str, Any]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(payload))

    emb = remote(answer)
    with pytest.raises(EmbedderError):
        await emb.embed(["x"])
    await emb.aclose()


async def test_non_json_body_becomes_embedder_error() -> None:
    emb = remote(lambda request: httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(EmbedderError, match="malformed"):
        await emb.embed(["x"])
    await emb.aclose()


async def test_base64_embeddings_are_decoded() -> None:
    raw = np.array([3.0, 4.0], dtype="<f4")

    def answer(request: httpx.Request) -> httpx.Response:
        encoded = base64.b64encode(raw.tobytes()).decode()
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": encoded}]})

    emb = remote(answer)
    np.testing.assert_allclose(await emb.embed(["x"]), [[0.6, 0.8]], rtol=1e-6)
    await emb.aclose()


async def test_large_inputs_are_split_and_reassembled_in_order() -> None:
    server = Server()
    emb = remote(server, max_batch=2)
    texts = [f"text {i}" for i in range(5)]
    vectors = await emb.embed(texts)
    await emb.aclose()
    assert sorted(len(b["input"]) for b in server.bodies()) == [1, 2, 2]
    np.testing.assert_allclose(vectors, await_free_expected(texts), rtol=1e-5)


def await_free_expected(texts: Sequence[str]) -> Vector:
    expected = np.array([vector_for(t) for t in texts], dtype=np.float32)
    return expected / np.linalg.norm(expected, axis=1, keepdims=True)


async def test_empty_strings_are_sent_as_a_space() -> None:
    server = Server()
    emb = remote(server)
    await emb.embed(["", "x"])
    await emb.aclose()
    assert server.bodies()[0]["input"] == [" ", "x"]


class FakeEmbedder:
    """Unit vectors from a hash; counts calls."""

    dims = 8

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.closed = False

    async def embed(self, texts: Sequence[str]) -> Vector:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % self.dims] = 1.0
        return out

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_remote_embedder_speaks_to_the_embeddings_app(encoding: str) -> None:
    fake = FakeEmbedder()
    app = make_app(fake, model_name="fake")
    transport = httpx.ASGITransport(app=app)
    emb = RemoteEmbedder("http://app/v1", transport=transport)
    vectors = await emb.embed(["a", "bb", "ccc"])
    assert emb.dims == 8
    np.testing.assert_allclose(vectors, await fake.embed(["a", "bb", "ccc"]))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        raw = await client.post(
            "/v1/embeddings", json={"input": "one", "model": "m", "encoding_format": encoding}
        )
        bad = await client.post("/v1/embeddings", json={"input": [1, 2, 3]})
        health = await client.get("/health")
    await emb.aclose()
    body = raw.json()
    assert body["model"] == "m"
    assert body["object"] == "list"
    assert isinstance(body["data"][0]["embedding"], str if encoding == "base64" else list)
    assert bad.status_code == 400
    assert "token ids" in bad.json()["error"]["message"]
    assert health.json() == {"status": "ok", "dims": 8}


async def test_semantic_cache_learns_remote_dims_on_open() -> None:
    from reprise._cache import SemanticCache, ThresholdVerifier

    server = Server(dims=12)
    cache = SemanticCache(store=":memory:", embedder=remote(server), verifier=ThresholdVerifier())
    async with cache:
        await cache.store("What is the capital of France?", "Paris")
        hit = await cache.lookup("What is the capital of France?")
    assert hit is not None
    assert hit.response == "Paris"
    assert server.bodies()[0]["input"] == ["dimensions probe"]


async def test_make_embedder_passes_options_to_the_remote_embedder() -> None:
    from reprise._plugins import make_embedder

    server = Server(dims=5)
    emb = make_embedder(
        AZURE, headers={"api-key": KEY}, dims=5, transport=httpx.MockTransport(server)
    )
    assert isinstance(emb, RemoteEmbedder)
    assert emb.dims == 5
    await emb.embed(["x"])
    await emb.aclose()
    assert server.requests[0].headers["api-key"] == KEY


def test_fits_is_a_conservative_byte_count() -> None:
    embedder = remote(lambda request: httpx.Response(500), max_input_tokens=12)
    assert embedder.fits("a" * 10)
    assert not embedder.fits("a" * 11)
    assert not embedder.fits("\u00e9" * 6)  # 12 bytes of UTF-8
