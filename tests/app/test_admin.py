"""The admin API in-process, against the embedded store and Valkey+RediSearch."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from reprise.testing import FakeUpstreamServer
from reprise.testing.configs import api_yaml
from tests.gateway_fixtures import (
    app_from_yaml,
    chat,
    post,
    running,
    settle,
)

ADMIN_KEY = "admin-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def admin_yaml(upstream: str, store: str, admin: str = "", cache: str = "") -> str:
    admin = admin or f'admin: {{ key: "{ADMIN_KEY}" }}'
    return f"""
backends:
  chat: {{ url: "{upstream}/v1" }}
  local-embed: {{ url: local }}
subscriptions:
  team-a: {{ key: "key-team-a-0123456789" }}
cache: {{ url: "{store}", lookup-budget-ms: 5000 {cache} }}
{admin}
prices:
  gpt-4o: {{ input-per-million: 2.5, output-per-million: 10 }}
apis:
{api_yaml("chat", vary_by="<vary-by>@(context.Subscription.Id)</vary-by>")}
"""


SUB = {"api-key": "key-team-a-0123456789"}


@pytest.fixture(params=["embedded", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "embedded":
        return ":memory:"
    url: str = request.getfixturevalue("redis_url")
    return f"{url}?prefix=admin:{uuid.uuid4().hex}:&timeout=5"


@pytest.fixture
async def admin_client(
    fake_upstream: FakeUpstreamServer, store_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app_from_yaml(admin_yaml(fake_upstream.url, store_url))) as client:
        yield client
        await client.delete("/reprise/admin/entries", headers=ADMIN)


async def ask(client: httpx.AsyncClient, prompt: str, **params: Any) -> httpx.Response:
    response = await post(client, chat(prompt, **params), headers=SUB)
    assert response.status_code == 200, response.text
    await settle()
    return response


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


# -- off, and who may call it


async def test_without_an_admin_key_every_admin_path_is_a_404(
    gateway_client: httpx.AsyncClient,
) -> None:
    for method, path in [
        ("GET", "/reprise/admin/"),
        ("GET", "/reprise/admin"),
        ("GET", "/reprise/admin/stats"),
        ("DELETE", "/reprise/admin/entries"),
        ("GET", "/reprise/admin/export"),
    ]:
        response = await gateway_client.request(method, path, headers=ADMIN)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789abcdef"},
        {"Authorization": "Bearer key-team-a-0123456789"},  # a subscription key
        {"api-key": ADMIN_KEY},  # the right key in the wrong header
        {"Authorization": f"Basic {ADMIN_KEY}"},
    ],
)
async def test_anything_but_the_admin_key_is_a_401(
    admin_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/reprise/admin/stats"),
        ("DELETE", "/reprise/admin/entries"),
        ("GET", "/reprise/admin/export"),
        ("POST", "/reprise/admin/import"),
        ("GET", "/reprise/admin/"),
        ("GET", "/reprise/admin/no-such-thing"),
    ]:
        response = await admin_client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        error = response.json()["error"]
        assert error["type"] == "authentication_error"


async def test_a_browser_without_the_key_gets_the_page_that_asks_for_it(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.get("/reprise/admin/", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "Admin key" in response.text
    page = await admin_client.get("/reprise/admin/", headers=ADMIN)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text
    assert "http" not in page.text.replace("http://www.w3.org/2000/svg", "")  # no CDN


async def test_an_unknown_admin_endpoint_is_a_404_and_a_wrong_method_a_405(
    admin_client: httpx.AsyncClient,
) -> None:
    missing = await admin_client.get("/reprise/admin/nothing", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await admin_client.post("/reprise/admin/stats", headers=ADMIN)
    assert wrong.status_code == 405


# -- stats and savings


async def test_stats_count_entries_hits_and_savings_as_metrics_do(
    admin_client: httpx.AsyncClient,
) -> None:
    first = await ask(admin_client, "What is the capital of the admin kingdom?")
    await ask(admin_client, "What is the capital of the admin kingdom?")
    await ask(admin_client, "How tall is the admin tower of Reprise?")
    await ask(admin_client, "How tall is the admin tower of Reprise?")
    await ask(admin_client, "How tall is the admin tower of Reprise?")

    stats = (await admin_client.get("/reprise/admin/stats", headers=ADMIN)).json()
    metrics = (await admin_client.get("/metrics")).text

    assert stats["entries"] == 2
    assert isinstance(stats["evictions"], int)
    assert (stats["hits"], stats["misses"], stats["lookups"]) == (3, 2, 5)
    assert stats["hit_rate"] == pytest.approx(0.6)
    assert stats["hits"] == metric(metrics, "reprise_cache_lookups_total", status="HIT")
    usage = first.json()["usage"]
    everest = (await ask(admin_client, "How tall is the admin tower of Reprise?")).json()["usage"]
    stats = (await admin_client.get("/reprise/admin/stats", headers=ADMIN)).json()
    metrics = (await admin_client.get("/metrics")).text
    tokens = usage["total_tokens"] + 3 * everest["total_tokens"]
    assert stats["savings"]["tokens"] == tokens
    assert metric(metrics, "reprise_cache_tokens_saved_total") == tokens
    assert metric(metrics, "reprise_cache_tokens_saved_total", api="chat", model="gpt-4o") == tokens
    cost = (
        (usage["prompt_tokens"] + 3 * everest["prompt_tokens"]) * 2.5
        + (usage["completion_tokens"] + 3 * everest["completion_tokens"]) * 10
    ) / 1e6
    assert stats["savings"]["cost_usd"] == pytest.approx(cost)
    assert metric(metrics, "reprise_cache_cost_saved_usd_total") == pytest.approx(cost)
    assert stats["savings"]["backend_seconds"] > 0
    assert metric(metrics, "reprise_cache_backend_seconds_saved_total") == pytest.approx(
        stats["savings"]["backend_seconds"], abs=0.01
    )
    assert "reprise_cache_evictions_total" in metrics

    (cache,) = stats["caches"]
    assert cache["name"] == "local-embed"
    assert cache["entries"] == 2
    assert cache["oldest"] <= cache["newest"]
    partition = cache["partitions"][0]
    assert len(partition["partition"]) == 32  # a digest, not a name
    assert "name" not in partition
    assert partition["entries"] == 2
    assert partition["bytes"] > 2 * 384 * 4
    assert (partition["hits"], partition["misses"]) == (4, 2)
    (api,) = stats["apis"]
    assert (api["name"], api["hits"]) == ("chat", 4)


async def test_activity_lists_recent_decisions_without_prompt_text(
    admin_client: httpx.AsyncClient,
) -> None:
    await ask(admin_client, "Name a prime number above 100")
    await ask(admin_client, "Name a prime number above 100")

    activity = (await admin_client.get("/reprise/admin/activity", headers=ADMIN)).json()

    hit, miss = activity["recent"][:2]
    assert (hit["status"], miss["status"]) == ("HIT", "MISS")
    assert hit["reason"] == "exact match"
    assert hit["entry"]
    assert "prime" not in json.dumps(activity)
    assert activity["latency"]["HIT"]["count"] >= 1
    assert sum(minute["lookups"] for minute in activity["timeline"]) >= 2


# -- purging


async def test_delete_one_entry_one_partition_or_everything(
    admin_client: httpx.AsyncClient,
) -> None:
    served = await ask(admin_client, "Which river flows through Paris?")
    await ask(admin_client, "Which river flows through Rome?", temperature=0.5)  # 2nd partition
    await ask(admin_client, "Which river flows through Vienna?")
    hit = await ask(admin_client, "Which river flows through Paris?")
    entry = hit.headers["x-cache-entry"]
    assert served.headers["x-cache-status"] == "MISS"

    gone = await admin_client.delete(f"/reprise/admin/entries/{entry}", headers=ADMIN)
    assert gone.json() == {"deleted": 1, "entry": entry}
    again = await admin_client.delete(f"/reprise/admin/entries/{entry}", headers=ADMIN)
    assert again.status_code == 404
    assert (await ask(admin_client, "Which river flows through Paris?")).headers[
        "x-cache-status"
    ] == "MISS"

    stats = (await admin_client.get("/reprise/admin/stats", headers=ADMIN)).json()
    small = min(stats["caches"][0]["partitions"], key=lambda p: p["entries"])
    assert small["entries"] == 1
    purged = await admin_client.delete(
        f"/reprise/admin/partitions/{small['partition']}", headers=ADMIN
    )
    assert purged.json()["deleted"] == 1
    unknown = await admin_client.delete("/reprise/admin/partitions/" + "0" * 32, headers=ADMIN)
    assert unknown.status_code == 404

    everything = await admin_client.delete("/reprise/admin/entries", headers=ADMIN)
    assert everything.json()["deleted"] == 2
    stats = (await admin_client.get("/reprise/admin/stats", headers=ADMIN)).json()
    assert stats["entries"] == 0


# -- export and import


async def test_export_then_import_restores_the_cache(admin_client: httpx.AsyncClient) -> None:
    prompts = [f"Tell me fact number {i} about admin octopi" for i in range(5)]
    for prompt in prompts:
        await ask(admin_client, prompt)
    exported = await admin_client.get("/reprise/admin/export", headers=ADMIN)
    assert exported.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert sorted(line["prompt"] for line in lines) == sorted(prompts)
    first = lines[0]
    assert {"prompt", "response", "partition", "model", "expires_at"} <= first.keys()
    assert first["model"] == "gpt-4o"
    assert first["expires_at"] > first["created_at"]

    await admin_client.delete("/reprise/admin/entries", headers=ADMIN)
    body = (
        exported.content
        + b'not json\n{"prompt": 3}\n'
        + json.dumps({**first, "expires_at": 1.0}).encode()
    )
    imported = await admin_client.post("/reprise/admin/import", headers=ADMIN, content=body)
    report = imported.json()
    assert (report["imported"], report["skipped"]) == (5, 3)
    assert report["reasons"] == {
        "not JSON": 1,
        "prompt and response must be strings": 1,
        "expired": 1,
    }
    assert [s["line"] for s in report["skipped_lines"]] == [6, 7, 8]
    hit = await ask(admin_client, prompts[3])
    assert hit.headers["x-cache-status"] == "HIT"
    again = await admin_client.post(
        "/reprise/admin/import", headers=ADMIN, content=exported.content
    )
    assert again.json()["reasons"] == {"already cached": 5}


async def test_export_of_one_partition(admin_client: httpx.AsyncClient) -> None:
    await ask(admin_client, "Describe the colour blue")
    await ask(admin_client, "Describe the colour red", temperature=0.3)
    stats = (await admin_client.get("/reprise/admin/stats", headers=ADMIN)).json()
    shown = stats["caches"][0]["partitions"][0]["partition"]
    exported = await admin_client.get(
        "/reprise/admin/export", params={"partition": shown}, headers=ADMIN
    )
    assert len(exported.text.splitlines()) == 1
    unknown = await admin_client.get(
        "/reprise/admin/export", params={"cache": "nope"}, headers=ADMIN
    )
    assert unknown.status_code == 404


# -- the "wrong answer" button


async def test_wrong_answer_marks_a_recent_hit_through_the_feedback_path(
    admin_client: httpx.AsyncClient,
) -> None:
    await ask(admin_client, "At what temperature does admin soup boil?")
    await ask(admin_client, "At what temperature does admin soup boil?")
    recent = (await admin_client.get("/reprise/admin/activity", headers=ADMIN)).json()["recent"]
    hit = recent[0]
    assert hit["status"] == "HIT"

    marked = await admin_client.post(
        f"/reprise/admin/decisions/{hit['number']}/wrong", headers=ADMIN
    )

    assert marked.json() == {"entry": hit["entry"], "marked": True}
    after = await ask(admin_client, "At what temperature does admin soup boil?")
    assert after.headers["x-cache-status"] == "MISS"
    missing = await admin_client.post("/reprise/admin/decisions/999999/wrong", headers=ADMIN)
    assert missing.status_code == 404


async def test_opting_in_shows_partition_names_and_prompts(
    fake_upstream: FakeUpstreamServer,
) -> None:
    admin = f'admin: {{ key: "{ADMIN_KEY}", show-partition-names: true, show-prompts: true }}'
    app = app_from_yaml(admin_yaml(fake_upstream.url, ":memory:", admin=admin))
    async with running(app) as client:
        await ask(client, "Spell the admin word accommodate")
        stats = (await client.get("/reprise/admin/stats", headers=ADMIN)).json()
        activity = (await client.get("/reprise/admin/activity", headers=ADMIN)).json()
    partition = stats["caches"][0]["partitions"][0]
    assert partition["name"] != partition["partition"]
    assert activity["recent"][0]["prompt"] == "Spell the admin word accommodate"
    assert activity["recent"][0]["partition_name"] == partition["name"]


async def test_max_entries_bounds_the_gateway_cache(fake_upstream: FakeUpstreamServer) -> None:
    yaml = admin_yaml(fake_upstream.url, ":memory:", cache=", max-entries: 3")
    async with running(app_from_yaml(yaml)) as client:
        for i in range(6):
            await ask(client, f"Give me a synonym for the word number {i}")
        stats = (await client.get("/reprise/admin/stats", headers=ADMIN)).json()
        metrics = (await client.get("/metrics")).text
        assert (stats["entries"], stats["evictions"]) == (3, 3)
        assert metric(metrics, "reprise_cache_evictions_total", cache="local-embed") == 3
        assert stats["caches"][0]["max_entries"] == 3
        # the process's own memories of the texts it embedded are bounded too, and shown
        memory = stats["caches"][0]["memory"]
        assert memory["embedded_texts"] == memory["token_texts"] >= 6
        assert 0 < memory["token_bytes"] < memory["token_bytes_max"]
        assert memory["embedded_texts_max"] == memory["token_texts_max"] == 4096
