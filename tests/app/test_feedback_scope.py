"""Feedback is scoped to the caller: only an entry its own request could be served marks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.gateway_fixtures import KEY, chat, post, settle

SUB = "/sub/v1/chat/completions"


def report(entry: str, body: dict[str, Any], path: str = "/chat/v1/chat/completions") -> Any:
    return {"entry_id": entry, "path": path, "request": body, "correct": False}


async def cached_entry(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> str:
    """Store an answer for `body`, then return the entry a repeat is served from."""
    await post(client, body, **kw)
    await settle()
    hit = await post(client, body, **kw)
    assert hit.headers["x-cache-status"] == "HIT"
    return hit.headers["x-cache-entry"]


async def test_another_subscriptions_entry_is_a_404_like_a_missing_one(
    subscribed_client: httpx.AsyncClient,
) -> None:
    body = chat(f"Which plan suits a team of five? {uuid.uuid4().hex[:6]}")
    team_a, team_b = {"api-key": "key-team-a"}, {"api-key": "key-team-b"}
    entry = await cached_entry(subscribed_client, body, api="sub", headers=team_a)

    foreign = await subscribed_client.post(
        "/reprise/feedback", json=report(entry, body, SUB), headers=team_b
    )
    missing = await subscribed_client.post(
        "/reprise/feedback", json=report("0" * 32, body, SUB), headers=team_a
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"] == "entry_not_found"
    still = await post(subscribed_client, body, api="sub", headers=team_a)
    assert still.headers["x-cache-status"] == "HIT"  # team b's report changed nothing

    own = await subscribed_client.post(
        "/reprise/feedback", json=report(entry, body, SUB), headers=team_a
    )
    assert own.status_code == 200
    assert own.json() == {"entry_id": entry, "marked": True}
    gone = await post(subscribed_client, body, api="sub", headers=team_a)
    assert gone.headers["x-cache-status"] == "MISS"


async def test_another_credentials_entry_is_a_404(gateway_client: httpx.AsyncClient) -> None:
    body = chat(f"How long does a passport renewal take? {uuid.uuid4().hex[:6]}")
    entry = await cached_entry(gateway_client, body)
    other = {"Authorization": "Bearer someone-else"}
    response = await gateway_client.post(
        "/reprise/feedback", json=report(entry, body), headers=other
    )
    assert response.status_code == 404
    assert (await post(gateway_client, body)).headers["x-cache-status"] == "HIT"


async def test_feedback_naming_a_request_in_another_partition_is_a_404(
    gateway_client: httpx.AsyncClient,
) -> None:
    body = chat(f"What is the boiling point of water? {uuid.uuid4().hex[:6]}")
    entry = await cached_entry(gateway_client, body)
    hotter = chat("What is the boiling point of water?", temperature=1.5)  # another partition
    response = await gateway_client.post(
        "/reprise/feedback", json=report(entry, hotter), headers=KEY
    )
    assert response.status_code == 404


async def test_a_malformed_report_is_a_400_naming_the_field(
    gateway_client: httpx.AsyncClient,
) -> None:
    for payload, field in (
        ({"entry_id": "x", "request": chat("q")}, "path"),
        ({"entry_id": "x", "path": "/chat/v1/chat/completions"}, "request"),
        ({"path": "/chat/v1/chat/completions", "request": chat("q")}, "entry_id"),
    ):
        response = await gateway_client.post("/reprise/feedback", json=payload, headers=KEY)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == field
    proxied = report("x", chat("q"), path="/plain/v1/chat/completions")
    response = await gateway_client.post("/reprise/feedback", json=proxied, headers=KEY)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "path"
