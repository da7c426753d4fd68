"""Verified hits through the gateway: the entry header, the feedback endpoint, rule misses."""

from __future__ import annotations

import httpx

from tests.gateway_fixtures import KEY, chat, post, settle


async def test_a_hit_names_its_entry_and_feedback_stops_serving_it(
    gateway_client: httpx.AsyncClient,
) -> None:
    await post(gateway_client, chat("How do I descale a kettle with vinegar?"))
    await settle()
    body = chat("How can I descale a kettle with vinegar?")
    hit = await post(gateway_client, body)
    assert hit.headers["x-cache-status"] == "HIT"
    entry = hit.headers["x-cache-entry"]

    path = "/chat/v1/chat/completions"
    feedback = {"entry_id": entry, "path": path, "request": body, "correct": False}
    marked = await gateway_client.post("/reprise/feedback", json=feedback, headers=KEY)
    assert marked.status_code == 200
    assert marked.json() == {"entry_id": entry, "marked": True}

    again = await post(gateway_client, body)
    assert again.headers["x-cache-status"] == "MISS"
    assert "x-cache-entry" not in again.headers


async def test_feedback_on_an_unknown_entry_is_a_404(gateway_client: httpx.AsyncClient) -> None:
    path, body = "/chat/v1/chat/completions", chat("x")
    feedback = {"entry_id": "no-such-entry", "path": path, "request": body, "correct": False}
    response = await gateway_client.post("/reprise/feedback", json=feedback, headers=KEY)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "entry_not_found"


async def test_a_swapped_direction_misses_through_the_gateway(
    gateway_client: httpx.AsyncClient,
) -> None:
    await post(gateway_client, chat("Cheapest way to ship a parcel from Canada to Brazil?"))
    await settle()
    swapped = await post(
        gateway_client, chat("Cheapest way to ship a parcel from Brazil to Canada?")
    )
    assert swapped.headers["x-cache-status"] == "MISS"
