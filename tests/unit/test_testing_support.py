"""The shared fake upstream (in-process) and the launcher's error on a plain install."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from reprise._exceptions import ConfigError
from reprise.testing import FakeUpstream, ManualClock, default_answer
from reprise.testing.servers import _dev_file
from tests.fakes import FakeEmbedder


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, httpx.AsyncClient]]:
    fake = FakeUpstream()
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://upstream") as client:
        yield fake, client


def chat(prompt: str) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": prompt}]}


async def test_counts_calls_per_prompt_and_in_total(
    upstream: tuple[FakeUpstream, httpx.AsyncClient],
) -> None:
    fake, client = upstream
    for prompt in ("one", "two", "one"):
        response = await client.post("/v1/chat/completions", json=chat(prompt))
        assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    assert content == default_answer("one", 2)
    stats = (await client.get("/_control/stats")).json()
    assert (stats["total"], stats["calls"], fake.total_calls) == (3, {"one": 2, "two": 1}, 3)
    assert (await client.post("/_control/reset")).status_code == 200
    assert (await client.get("/_control/stats")).json()["total"] == 0


async def test_fail_first_fails_only_the_first_call_of_a_prompt(
    upstream: tuple[FakeUpstream, httpx.AsyncClient],
) -> None:
    _, client = upstream
    body = chat("flaky [fail-first:503]")
    first = await client.post("/v1/chat/completions", json=body)
    second = await client.post("/v1/chat/completions", json=body)
    assert first.status_code == 503
    assert first.json()["error"]["type"] == "server_error"
    assert second.status_code == 200


async def test_answer_and_embedder_are_pluggable() -> None:
    embedder = FakeEmbedder()
    fake = FakeUpstream(answer=lambda prompt, call: f"{prompt.upper()} #{call}", embedder=embedder)
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://upstream") as client:
        assert (await client.get("/healthz")).status_code == 200
        answer = (await client.post("/v1/chat/completions", json=chat("hi"))).json()
        vectors = await client.post("/v1/embeddings", json={"input": ["a b", "c"]})
    assert answer["choices"][0]["message"]["content"] == "HI #1"
    got = np.array([item["embedding"] for item in vectors.json()["data"]], dtype=np.float32)
    assert np.allclose(got, await embedder.embed(["a b", "c"]))


async def test_without_an_embedder_embeddings_are_seeded_unit_vectors(
    upstream: tuple[FakeUpstream, httpx.AsyncClient],
) -> None:
    _, client = upstream
    first = (await client.post("/v1/embeddings", json={"input": "same"})).json()
    again = (await client.post("/v1/embeddings", json={"input": ["same", "other"]})).json()
    vectors = [np.array(d["embedding"]) for d in again["data"]]
    assert first["data"][0]["embedding"] == again["data"][0]["embedding"]
    assert [round(float(np.linalg.norm(v)), 5) for v in vectors] == [1.0, 1.0]
    assert not np.allclose(vectors[0], vectors[1])


def test_a_managed_valkey_without_the_dev_wheels_says_which_to_install() -> None:
    with pytest.raises(ConfigError, match=r"reprise\[dev\]"):
        _dev_file("reprise_no_such_wheel", "bin/valkey-server")


def test_a_manual_clock_moves_when_advanced_and_a_flowing_one_with_real_time() -> None:
    frozen, flowing = ManualClock(), ManualClock(frozen=False)
    start = frozen()
    assert abs(start - time.time()) < 5
    time.sleep(0.01)
    assert frozen() == start
    frozen.advance(2.5)
    assert frozen() == start + 2.5
    before = flowing()
    time.sleep(0.01)
    flowing.advance(10)
    assert flowing() >= before + 10.01
