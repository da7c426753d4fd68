"""The gateway's cache pipeline, in-process: hits, misses, partitions, streaming, stores.

The app runs under httpx.ASGITransport against the fake upstream process, with
the real local model and the embedded store. Each test uses its own prompts,
because the app (and its cache) is shared by the session.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from reprise._gateway import sse
from reprise.testing import FakeUpstreamServer, ManualClock
from tests.gateway_fixtures import chat, post, settle


async def test_exact_repeat_hits_without_calling_the_backend(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "How many moons does Neptune have?"
    first = await post(gateway_client, chat(prompt))
    await settle()
    second = await post(gateway_client, chat(prompt))
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache-status"] == "MISS"
    assert second.headers["x-cache-status"] == "HIT"
    assert float(second.headers["x-cache-score"]) == 0.0
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    assert fake_upstream.calls(prompt) == 1


async def test_paraphrase_hits(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    await post(gateway_client, chat("What is the capital city of France?"))
    await settle()
    hit = await post(gateway_client, chat("Which city is the capital of France?"))
    assert hit.headers["x-cache-status"] == "HIT"
    assert 0.0 < float(hit.headers["x-cache-score"]) <= 0.15
    assert "What is the capital city of France?" in hit.json()["choices"][0]["message"]["content"]
    assert fake_upstream.calls("Which city is the capital of France?") == 0


async def test_a_different_temperature_is_a_different_partition(
    gateway_client: httpx.AsyncClient,
) -> None:
    prompt = "Name three primary colours."
    await post(gateway_client, chat(prompt, temperature=0.2))
    await settle()
    same = await post(gateway_client, chat(prompt, temperature=0.2))
    other = await post(gateway_client, chat(prompt, temperature=0.9))
    assert same.headers["x-cache-status"] == "HIT"
    assert other.headers["x-cache-status"] == "MISS"


async def test_another_model_misses(gateway_client: httpx.AsyncClient) -> None:
    prompt = "Spell 'necessary' backwards."
    await post(gateway_client, chat(prompt))
    await settle()
    other = await post(gateway_client, {**chat(prompt), "model": "gpt-4o-mini"})
    assert other.headers["x-cache-status"] == "MISS"


async def test_callers_with_different_keys_never_share_answers(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "What does HTTP status 418 mean?"
    await post(gateway_client, chat(prompt), headers={"Authorization": "Bearer alice"})
    await settle()
    bob = await post(gateway_client, chat(prompt), headers={"Authorization": "Bearer bob"})
    alice = await post(gateway_client, chat(prompt), headers={"Authorization": "Bearer alice"})
    assert bob.headers["x-cache-status"] == "MISS"
    assert alice.headers["x-cache-status"] == "HIT"
    assert fake_upstream.calls(prompt) == 2


async def test_system_messages_are_ignored_when_configured(
    gateway_client: httpx.AsyncClient,
) -> None:
    def dialog(system: str) -> dict[str, Any]:
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": "Summarise the plot of Hamlet in one line."},
        ]
        return {"model": "gpt-4o", "messages": messages}

    for api, second_status in (("chat", "HIT"), ("keep-system", "MISS")):
        await post(gateway_client, dialog("You are terse."), api=api)
        await settle()
        again = await post(gateway_client, dialog("You are a pirate."), api=api)
        assert again.headers["x-cache-status"] == second_status, api


async def test_dialogs_over_max_message_count_bypass_the_cache(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    turns = ["Hi", "Hello!", "Tell me about owls", "Owls are birds.", "Long-eared owls?"]
    roles = ["user", "assistant"] * 3
    body = {
        "model": "gpt-4o",
        "messages": [{"role": r, "content": c} for r, c in zip(roles, turns, strict=False)],
    }
    first = await post(gateway_client, body)
    await settle()
    second = await post(gateway_client, body)
    assert first.headers["x-cache-status"] == second.headers["x-cache-status"] == "BYPASS"
    assert fake_upstream.calls("Long-eared owls?") == 2


async def test_a_streamed_miss_is_stored_and_replayed_to_both_kinds_of_request(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "List the planets of the solar system."
    options = {"stream": True, "stream_options": {"include_usage": True}}
    streamed = await post(gateway_client, chat(prompt, **options))
    assert streamed.headers["x-cache-status"] == "MISS"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    original = sse.assemble("chat", streamed.content)
    assert original is not None
    await settle()

    plain = await post(gateway_client, chat(prompt))
    assert plain.headers["x-cache-status"] == "HIT"
    assert plain.json()["choices"] == original["choices"]

    replayed = await post(gateway_client, chat(prompt, **options))
    assert replayed.headers["x-cache-status"] == "HIT"
    assert replayed.content.endswith(b"data: [DONE]\n\n")
    again = sse.assemble("chat", replayed.content)
    assert again is not None
    assert again["choices"] == original["choices"]
    assert again["usage"] == original["usage"] is not None
    assert fake_upstream.calls(prompt) == 1


async def test_a_non_streamed_answer_is_replayed_as_sse(
    gateway_client: httpx.AsyncClient,
) -> None:
    prompt = "Why is the sky blue?"
    plain = await post(gateway_client, chat(prompt))
    await settle()
    replayed = await post(gateway_client, chat(prompt, stream=True))
    assert replayed.headers["x-cache-status"] == "HIT"
    events = [data for _, data in sse.iter_events(replayed.content)]
    first = json.loads(events[0])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in events[:-1])  # not asked for
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == plain.json()["choices"][0]["message"]["content"]


async def test_tool_calls_survive_the_stream_round_trip(gateway_client: httpx.AsyncClient) -> None:
    prompt = "Find the weather in Oslo [tool]"
    streamed = await post(gateway_client, chat(prompt, stream=True))
    original = sse.assemble("chat", streamed.content)
    assert original is not None
    assert original["choices"][0]["finish_reason"] == "tool_calls"
    await settle()
    hit = await post(gateway_client, chat(prompt))
    assert hit.headers["x-cache-status"] == "HIT"
    assert (
        hit.json()["choices"][0]["message"]["tool_calls"]
        == (original["choices"][0]["message"]["tool_calls"])
    )


async def test_a_cut_stream_is_not_cached(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    for marker in ("[cut]", "[truncate]"):
        prompt = f"Write a haiku about rivers {marker}"
        first = await post(gateway_client, chat(prompt, stream=True))
        assert first.status_code == 200
        assert b"[DONE]" not in first.content
        await settle()
        second = await post(gateway_client, chat(prompt, stream=True))
        assert second.headers["x-cache-status"] == "MISS", marker
        assert fake_upstream.calls(prompt) == 2
    # A cut connection ends with an error event, so SDKs raise instead of stopping quietly.
    assert json.loads(list(sse.iter_events(first.content))[-1][1]).get("error") is None
    cut = await post(gateway_client, chat("Write a haiku about rivers [cut]", stream=True))
    assert "error" in json.loads(list(sse.iter_events(cut.content))[-1][1])


async def test_backend_errors_pass_through_and_are_not_cached(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "Translate 'cat' to French [status:500]"
    first = await post(gateway_client, chat(prompt))
    await settle()
    second = await post(gateway_client, chat(prompt))
    assert first.status_code == second.status_code == 500
    assert second.headers["x-cache-status"] == "MISS"
    assert "message" in second.json()["error"]
    assert fake_upstream.calls(prompt) == 2


async def test_legacy_completions_and_responses_are_cached(
    gateway_client: httpx.AsyncClient,
) -> None:
    legacy = {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon a time"}
    responses = {"model": "gpt-4o", "input": "Give me a fun fact about octopuses."}
    for endpoint, body, kind in (
        ("/v1/completions", legacy, "completions"),
        ("/v1/responses", responses, "responses"),
    ):
        miss = await post(gateway_client, body, endpoint=endpoint)
        await settle()
        hit = await post(gateway_client, body, endpoint=endpoint)
        assert (miss.headers["x-cache-status"], hit.headers["x-cache-status"]) == ("MISS", "HIT")
        assert hit.json() == miss.json()
        streamed = await post(gateway_client, {**body, "stream": True}, endpoint=endpoint)
        assert streamed.headers["x-cache-status"] == "HIT"
        assert sse.assemble(kind, streamed.content) is not None  # type: ignore[arg-type]


async def test_ttl_expiry(gateway_client: httpx.AsyncClient, gateway_clock: ManualClock) -> None:
    prompt = "What is the boiling point of water at sea level?"
    await post(gateway_client, chat(prompt), api="ttl2")
    await settle()
    hit = await post(gateway_client, chat(prompt), api="ttl2")
    gateway_clock.advance(2.2)  # the entry's duration is 2 s; the hit came well within it
    expired = await post(gateway_client, chat(prompt), api="ttl2")
    assert hit.headers["x-cache-status"] == "HIT"
    assert expired.headers["x-cache-status"] == "MISS"


async def test_cache_control_no_cache_and_no_store(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "How tall is Mount Everest?"
    skipped = await post(gateway_client, chat(prompt), headers={"Cache-Control": "no-store"})
    await settle()
    fresh = await post(gateway_client, chat(prompt), headers={"Cache-Control": "no-cache"})
    await settle()
    hit = await post(gateway_client, chat(prompt))
    assert skipped.headers["x-cache-status"] == "MISS"
    assert fresh.headers["x-cache-status"] == "BYPASS"
    assert hit.headers["x-cache-status"] == "HIT"  # the no-cache answer was stored
    assert fake_upstream.calls(prompt) == 2
