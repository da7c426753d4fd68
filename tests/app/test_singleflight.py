"""Single-flight in one process: a burst of identical misses makes one backend call."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from reprise._gateway import sse
from tests.gateway_fixtures import FakeUpstreamServer, chat, post, settle


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


async def until_called(upstream: FakeUpstreamServer, prompt: str) -> None:
    """Wait until the backend has the leader's call: the flight is then registered."""
    for _ in range(500):
        if upstream.calls(prompt):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the leader never reached the backend")


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}_total{{") and want in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_fifty_identical_misses_make_one_backend_call(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = unique("What is the most popular question today? [sleep:2]")
    before = (await gateway_client.get("/metrics")).text
    answers = await asyncio.gather(*(post(gateway_client, chat(prompt)) for _ in range(50)))
    assert fake_upstream.calls(prompt) == 1
    assert {r.status_code for r in answers} == {200}
    contents = {r.json()["choices"][0]["message"]["content"] for r in answers}
    assert len(contents) == 1
    assert "(call 1)" in contents.pop()
    statuses = sorted(r.headers["x-cache-status"] for r in answers)
    assert statuses == ["HIT"] * 49 + ["MISS"]
    coalesced = [r for r in answers if r.headers.get("x-cache-coalesced") == "true"]
    assert len(coalesced) == 49
    entries = {r.headers["x-cache-entry"] for r in coalesced}
    assert len(entries) == 1
    after = (await gateway_client.get("/metrics")).text
    served = metric(after, "reprise_coalesced_requests", api="chat", outcome="served")
    assert served - metric(before, "reprise_coalesced_requests", api="chat", outcome="served") == 49
    await settle()
    again = await post(gateway_client, chat(prompt))
    assert again.headers["x-cache-status"] == "HIT"
    assert again.headers["x-cache-entry"] == entries.pop()  # the entry the followers named


async def test_streaming_followers_get_a_valid_replay(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = unique("Stream me the answer to a popular question [sleep:2]")
    requests = [
        post(gateway_client, chat(prompt, stream=i % 2 == 0, stream_options=None))
        for i in range(10)
    ]
    answers = await asyncio.gather(*requests)
    assert fake_upstream.calls(prompt) == 1
    contents = set()
    for i, response in enumerate(answers):
        assert response.status_code == 200
        if i % 2 == 0:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.text.rstrip().endswith("data: [DONE]")
            assembled = sse.assemble("chat", response.content)
            assert assembled is not None
            contents.add(assembled["choices"][0]["message"]["content"])
        else:
            contents.add(response.json()["choices"][0]["message"]["content"])
    assert len(contents) == 1


async def test_a_failing_leader_lets_the_followers_through(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = unique("A question whose first call fails [fail-first:500] [sleep:1]")
    before = (await gateway_client.get("/metrics")).text
    leader = asyncio.create_task(post(gateway_client, chat(prompt)))
    await until_called(fake_upstream, prompt)
    followers = await asyncio.gather(*(post(gateway_client, chat(prompt)) for _ in range(4)))
    answers = [await leader, *followers]
    codes = [r.status_code for r in answers]
    assert codes == [500, 200, 200, 200, 200]  # the leader's own backend error, nobody else's
    assert fake_upstream.calls(prompt) == 5
    assert not any(r.headers.get("x-cache-coalesced") for r in answers)
    after = (await gateway_client.get("/metrics")).text
    went_alone = metric(after, "reprise_coalesced_requests", api="chat", outcome="backend")
    assert (
        went_alone - metric(before, "reprise_coalesced_requests", api="chat", outcome="backend")
        == 4
    )


async def test_a_cancelled_leader_lets_the_followers_through(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = unique("A question whose first client hangs up [sleep:3]")
    leader = asyncio.create_task(post(gateway_client, chat(prompt)))
    await until_called(fake_upstream, prompt)
    followers = [asyncio.create_task(post(gateway_client, chat(prompt))) for _ in range(3)]
    await asyncio.sleep(1.0)  # the followers are waiting on the leader's flight
    leader.cancel()
    answers = await asyncio.gather(*followers)
    assert {r.status_code for r in answers} == {200}
    assert not any(r.headers.get("x-cache-coalesced") for r in answers)
    assert fake_upstream.calls(prompt) == 4


async def test_different_partitions_never_coalesce(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = unique("Same words, two temperatures [sleep:0.3]")
    cold, warm = await asyncio.gather(
        post(gateway_client, chat(prompt, temperature=0)),
        post(gateway_client, chat(prompt, temperature=1)),
    )
    assert fake_upstream.calls(prompt) == 2
    assert cold.headers["x-cache-status"] == warm.headers["x-cache-status"] == "MISS"


async def test_the_trace_names_a_coalesced_hit(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = unique("Trace the coalescing [sleep:2]")
    leader = asyncio.create_task(post(gateway_client, chat(prompt)))
    await until_called(fake_upstream, prompt)
    follower = await post(gateway_client, chat(prompt), headers={"X-Reprise-Trace": "true"})
    assert (await leader).headers["x-cache-status"] == "MISS"
    assert follower.headers["x-cache-status"] == "HIT"
    steps = json.loads(follower.headers["x-reprise-trace"])
    assert {"step": "coalesced", "outcome": "served"} in [
        {k: v for k, v in s.items() if k != "at_ms"} for s in steps
    ]


async def test_misses_whose_lookup_failed_coalesce_too(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    # The "dead" API's embeddings backend is down: every lookup FAILS, and a burst
    # then is exactly what single-flight is for. The answer goes from memory.
    prompt = unique("A question while the cache is failing [sleep:2]")
    answers = await asyncio.gather(
        *(post(gateway_client, chat(prompt), api="dead") for _ in range(10))
    )
    assert fake_upstream.calls(prompt) == 1
    assert len({r.content for r in answers}) == 1
    assert sum(r.headers.get("x-cache-coalesced") == "true" for r in answers) == 9
