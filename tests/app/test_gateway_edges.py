"""The gateway's edges, in-process: client errors, rate limits, credentials, failing open."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from reprise.testing import FakeUpstreamServer
from tests.gateway_fixtures import (
    KEY,
    app_config_yaml,
    app_from_yaml,
    chat,
    post,
    running,
    settle,
)


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert {"type", "param", "code"} <= error.keys()
    return error  # type: ignore[no-any-return]


# -- client errors


async def test_bad_json_is_a_400(gateway_client: httpx.AsyncClient) -> None:
    response = await gateway_client.post(
        "/chat/v1/chat/completions", content=b"{not json", headers=KEY
    )
    assert_openai_error(response, 400)
    assert response.headers["x-cache-status"] == "BYPASS"


async def test_a_json_array_body_is_a_400(gateway_client: httpx.AsyncClient) -> None:
    response = await gateway_client.post("/chat/v1/chat/completions", json=[1, 2], headers=KEY)
    assert_openai_error(response, 400)


async def test_missing_messages_is_a_400_naming_the_parameter(
    gateway_client: httpx.AsyncClient,
) -> None:
    response = await post(gateway_client, {"model": "gpt-4o"})
    assert assert_openai_error(response, 400)["param"] == "messages"


async def test_a_lone_surrogate_is_a_400(gateway_client: httpx.AsyncClient) -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}'
    response = await gateway_client.post("/chat/v1/chat/completions", content=body, headers=KEY)
    assert_openai_error(response, 400)


async def test_a_body_over_the_limit_is_a_413(gateway_client: httpx.AsyncClient) -> None:
    response = await post(gateway_client, chat("x" * 70_000))
    assert_openai_error(response, 413)


async def test_an_unknown_path_is_a_404(gateway_client: httpx.AsyncClient) -> None:
    response = await gateway_client.post("/nowhere/v1/chat/completions", json=chat("hi"))
    assert_openai_error(response, 404)


# -- proxying


async def test_other_paths_are_proxied_unchanged(gateway_client: httpx.AsyncClient) -> None:
    models = await gateway_client.get("/chat/v1/models", headers=KEY)
    assert models.status_code == 200
    assert models.json()["data"][0]["id"] == "fake-model"
    assert models.headers["x-cache-status"] == "BYPASS"
    embeddings = await gateway_client.post(
        "/chat/v1/embeddings", json={"model": "e", "input": "hello"}, headers=KEY
    )
    assert len(embeddings.json()["data"][0]["embedding"]) == 384


async def test_proxying_adds_and_decodes_nothing(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    raw = await gateway_client.get(
        "/chat/v1/gzipped", headers={**KEY, "accept-encoding": "gzip", "user-agent": "sdk/1.0"}
    )
    assert raw.headers["content-encoding"] == "gzip"  # passed on compressed...
    assert raw.json() == {"object": "gzipped"}  # ...and the client decodes it
    seen = fake_upstream.last_headers()
    assert seen["user-agent"] == "sdk/1.0"  # the client's, not the gateway's HTTP library's
    assert seen["accept-encoding"] == "gzip"
    assert "content-length" not in seen  # a GET without a body gets no Content-Length: 0


async def test_a_chunked_request_body_is_streamed_to_the_backend(
    gateway_client: httpx.AsyncClient,
) -> None:
    async def body() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"model": "e", '
        yield b'"input": "streamed upload"}'

    response = await gateway_client.post(
        "/chat/v1/embeddings",
        content=body(),
        headers={**KEY, "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["model"] == "e"  # the backend read the whole body
    assert len(response.json()["data"][0]["embedding"]) == 384


async def test_an_api_without_cache_policies_has_no_cache_header(
    gateway_client: httpx.AsyncClient,
) -> None:
    response = await post(gateway_client, chat("Plain request through the gateway"), api="plain")
    assert response.status_code == 200
    assert "x-cache-status" not in response.headers


async def test_client_credentials_pass_through_without_backend_credentials(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    await post(gateway_client, chat("Who wrote Dune?"), headers={"x-custom": "kept"})
    seen = fake_upstream.last_headers()
    assert seen["authorization"] == KEY["Authorization"]
    assert seen["x-custom"] == "kept"


async def test_backend_credentials_replace_the_clients(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    headers = {"api-key": "client-api-key"}
    await post(gateway_client, chat("Who wrote Neuromancer?"), api="authed", headers=headers)
    seen = fake_upstream.last_headers()
    assert seen["authorization"] == "Bearer upstream-secret"
    assert "api-key" not in seen


async def test_an_unreachable_backend_is_a_502(gateway_client: httpx.AsyncClient) -> None:
    response = await post(gateway_client, chat("Is anyone there?"), api="down")
    assert_openai_error(response, 502)


async def test_a_slow_backend_is_a_504_and_not_cached(
    gateway_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "Take your time [sleep:1]"
    response = await post(gateway_client, chat(prompt), api="slow")
    assert_openai_error(response, 504)
    await settle()
    again = await post(gateway_client, chat(prompt), api="slow")
    assert again.status_code == 504
    assert again.headers["x-cache-status"] == "MISS"


# -- rate limits


async def test_rate_limit_counts_misses_only(gateway_client: httpx.AsyncClient) -> None:
    first = await post(gateway_client, chat("Rate limited question one"), api="rl")
    await settle()
    hits = [
        await post(gateway_client, chat("Rate limited question one"), api="rl") for _ in range(3)
    ]
    second = await post(gateway_client, chat("Rate limited question two about tides"), api="rl")
    refused = await post(gateway_client, chat("Rate limited question three on jazz"), api="rl")
    assert first.status_code == second.status_code == 200
    assert [h.headers["x-cache-status"] for h in hits] == ["HIT"] * 3
    error = assert_openai_error(refused, 429)
    assert error["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # A hit is still served after the limit: the lookup runs before the rate limit.
    assert (await post(gateway_client, chat("Rate limited question one"), api="rl")).is_success


async def test_rate_limit_covers_proxied_paths_too(gateway_client: httpx.AsyncClient) -> None:
    headers = {**KEY, "x-team": "green"}
    first = await gateway_client.get("/rlk/v1/models", headers=headers)
    second = await gateway_client.get("/rlk/v1/models", headers=headers)
    assert first.status_code == 200
    assert_openai_error(second, 429)


async def test_rate_limit_by_key_counts_per_key(gateway_client: httpx.AsyncClient) -> None:
    async def ask(prompt: str, team: str) -> int:
        response = await post(gateway_client, chat(prompt), api="rlk", headers={"x-team": team})
        return response.status_code

    assert await ask("Keyed limit question about whales", "red") == 200
    assert await ask("Keyed limit question about volcanoes", "red") == 429
    assert await ask("Keyed limit question about glaciers", "blue") == 200


# -- visibility


async def test_trace_shows_each_step_when_asked(gateway_client: httpx.AsyncClient) -> None:
    traced = {"X-Reprise-Trace": "true"}
    miss = await post(gateway_client, chat("How do vaccines work?"), headers=traced)
    await settle()
    hit = await post(gateway_client, chat("How do vaccines work?"), headers=traced)
    untraced = await post(gateway_client, chat("How do vaccines work?"))
    steps = [s["step"] for s in json.loads(miss.headers["x-reprise-trace"])]
    assert steps == ["partition", "lookup", "decision", "backend", "store"]
    hit_steps = json.loads(hit.headers["x-reprise-trace"])
    assert [s["step"] for s in hit_steps] == ["partition", "lookup", "decision"]
    assert hit_steps[1]["threshold"] == 0.15
    assert hit_steps[2] == {**hit_steps[2], "status": "HIT", "tier": "exact"}
    assert "x-reprise-trace" not in untraced.headers
    assert "client-key-1" not in miss.headers["x-reprise-trace"]


async def test_one_log_line_per_request_without_secrets(
    gateway_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="reprise.gateway"):
        await post(gateway_client, chat("Log me, please"), headers={"api-key": "sk-secret-123"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if '"event":"request"' in r.message]
    assert len(lines) == 1
    assert lines[0]["cache"] == "MISS"
    assert lines[0]["status"] == 200
    assert "sk-secret-123" not in caplog.text
    assert "client-key-1" not in caplog.text


async def test_metrics_count_lookups_by_status(gateway_client: httpx.AsyncClient) -> None:
    await post(gateway_client, chat("Count this lookup"))
    text = (await gateway_client.get("/metrics")).text
    assert 'reprise_cache_lookups_total{api="chat",status="MISS"}' in text
    assert "reprise_request_duration_seconds_bucket" in text


# -- failing open


async def test_a_dead_embeddings_backend_fails_open(gateway_client: httpx.AsyncClient) -> None:
    response = await post(gateway_client, chat("Fail open, please"), api="dead")
    assert response.status_code == 200
    assert response.headers["x-cache-status"] == "FAILED"


async def test_a_lookup_over_budget_fails_open(fake_upstream: FakeUpstreamServer) -> None:
    config = app_config_yaml(fake_upstream.url, budget_ms=0.001)
    async with running(app_from_yaml(config)) as client:
        response = await post(client, chat("Too slow to look up"))
        health = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-cache-status"] == "FAILED"
    assert health.json()["caches"]["local-embed"] == "open"


async def test_overload_sheds_semantic_lookups_at_once_and_still_serves_exact_hits(
    fake_upstream: FakeUpstreamServer,
) -> None:
    config = app_config_yaml(fake_upstream.url).replace(
        "lookup-budget-ms: 5000",
        "lookup-budget-ms: 5000, max-lookups-in-flight: 1, max-lookups-queued: 1",
    )
    stored = "Which rivers flow through Vienna?"
    rewordings = [f"Which rivers flow through Vienna? (variant {i})" for i in range(12)]
    async with running(app_from_yaml(config)) as client:
        await post(client, chat(stored))
        await settle()
        trace = {"X-Reprise-Trace": "true"}
        responses = await asyncio.gather(
            *(post(client, chat(text), headers=trace) for text in rewordings),
            post(client, chat(stored)),
        )
        metrics = (await client.get("/metrics")).text
    *semantic, exact = responses
    assert all(r.status_code == 200 for r in responses)
    assert exact.headers["x-cache-status"] == "HIT"
    shed = [
        (text, r)
        for text, r in zip(rewordings, semantic, strict=True)
        if "LookupShed" in r.headers["x-reprise-trace"]
    ]
    # One slot and one queue place: at most two of the twelve get a lookup at all.
    assert len(shed) >= 10
    assert "lookup queue full" in shed[0][1].headers["x-reprise-trace"]
    for text, r in shed:  # sent to the backend, which answered this very prompt
        assert r.headers["x-cache-status"] == "FAILED"
        assert fake_upstream.calls(text) == 1
        assert text in r.json()["choices"][0]["message"]["content"]
    assert f'reprise_cache_lookups_shed_total{{api="chat"}} {float(len(shed))}' in metrics


# -- subscriptions


async def test_subscriptions_reject_unknown_keys(subscribed_client: httpx.AsyncClient) -> None:
    for headers in ({}, {"api-key": "nope"}, {"Authorization": "Bearer nope"}):
        response = await subscribed_client.post(
            "/sub/v1/chat/completions", json=chat("Let me in"), headers=headers
        )
        assert_openai_error(response, 401)


async def test_subscriptions_are_isolated_and_keys_never_forwarded(
    subscribed_client: httpx.AsyncClient, fake_upstream: FakeUpstreamServer
) -> None:
    prompt = "What is the team's favourite colour?"

    async def ask(headers: dict[str, str]) -> httpx.Response:
        return await subscribed_client.post(
            "/sub/v1/chat/completions", json=chat(prompt), headers=headers
        )

    a = await ask({"api-key": "key-team-a"})
    assert "key-team-a" not in json.dumps(fake_upstream.last_headers())
    await settle()
    b = await ask({"Ocp-Apim-Subscription-Key": "key-team-b"})
    assert "key-team-b" not in json.dumps(fake_upstream.last_headers())
    a_again = await ask({"Authorization": "Bearer key-team-a"})
    assert (a.headers["x-cache-status"], b.headers["x-cache-status"]) == ("MISS", "MISS")
    assert a_again.headers["x-cache-status"] == "HIT"
    assert fake_upstream.calls(prompt) == 2
