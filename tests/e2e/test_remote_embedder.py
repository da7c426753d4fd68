"""The remote embedder and the official openai SDK against a real embeddings server process.

The server is `reprise model serve`, serving the local model;
its vectors must be the ones the local embedder makes in this process.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator

import numpy as np
import openai
import pytest

from reprise._embedders.export import export
from reprise._embedders.local import LocalEmbedder, ModelSpec
from reprise._embedders.remote import RemoteEmbedder
from reprise._exceptions import EmbedderError
from reprise.testing import Server, free_port

pytestmark = pytest.mark.e2e

TEXTS = ["How do I reset my password?", "", "Héllo wörld 🙂", "word " * 400]


@pytest.fixture(scope="module")
def embeddings_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    export(ModelSpec.load())  # a no-op once scripts/setup has exported the model
    port = free_port()
    command = [sys.executable, "-m", "reprise", "model", "serve", "--port", str(port)]
    server = Server("model-serve", command, port, tmp_path_factory.mktemp("model-serve"))
    server.health_path = "/health"
    with server:
        yield f"{server.url}/v1"


@pytest.fixture(scope="module")
async def local_vectors() -> AsyncIterator[np.ndarray[tuple[int, int], np.dtype[np.float32]]]:
    embedder = LocalEmbedder()
    yield await embedder.embed(TEXTS)
    await embedder.aclose()


async def test_remote_embedder_gets_the_local_models_vectors(
    embeddings_url: str, local_vectors: np.ndarray[tuple[int, int], np.dtype[np.float32]]
) -> None:
    embedder = RemoteEmbedder(embeddings_url, model="all-MiniLM-L6-v2")
    try:
        vectors = await embedder.embed(TEXTS)
        concurrent = await asyncio.gather(*(embedder.embed([t]) for t in TEXTS))
    finally:
        await embedder.aclose()
    assert embedder.dims == 384
    np.testing.assert_allclose(vectors, local_vectors, atol=1e-5)
    np.testing.assert_allclose(np.vstack(concurrent), local_vectors, atol=1e-5)


async def test_openai_sdk_reads_the_endpoint(
    embeddings_url: str, local_vectors: np.ndarray[tuple[int, int], np.dtype[np.float32]]
) -> None:
    async with openai.AsyncOpenAI(base_url=embeddings_url, api_key="unused") as client:
        answer = await client.embeddings.create(input=TEXTS, model="all-MiniLM-L6-v2")
        floats = await client.embeddings.create(
            input="How do I reset my password?", model="m", encoding_format="float"
        )
        models = await client.models.list()
    vectors = np.array([item.embedding for item in answer.data], dtype=np.float32)
    np.testing.assert_allclose(vectors, local_vectors, atol=1e-5)
    np.testing.assert_allclose(floats.data[0].embedding, local_vectors[0], atol=1e-5)
    assert [m.id for m in models.data] == ["all-MiniLM-L6-v2"]


async def test_a_stopped_server_is_an_embedder_error() -> None:
    embedder = RemoteEmbedder(f"http://127.0.0.1:{free_port()}/v1", timeout=5)
    with pytest.raises(EmbedderError, match="cannot reach"):
        await embedder.embed(["x"])
    await embedder.aclose()
