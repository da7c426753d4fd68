"""The gateway in-process: conversations, system prompts and long prompts on every endpoint.

The `chat` API ignores system messages and allows 3 messages; `keep-system`
keeps them and has no limit (tests/gateway_fixtures.py). Each test uses a
credential of its own, so its entries are its own partition.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.gateway_fixtures import post, settle

DOCUMENT = "\n\n".join(
    f"Section {i}. The depot in Ghent opens at {7 + i % 3}:00 and handles {40 + i} pallets a day."
    for i in range(12)
)


def dialog(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": r, "content": c} for r, c in turns]}


def who(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}"}


async def status(client: httpx.AsyncClient, body: dict[str, Any], key: str, **kw: Any) -> str:
    response = await post(client, body, headers=who(key), **kw)
    assert response.status_code == 200, response.text
    await settle()
    return response.headers["x-cache-status"]


async def test_a_conversation_within_max_message_count_is_cached_by_its_context(
    gateway_client: httpx.AsyncClient,
) -> None:
    history = [("user", "What is a mutex?"), ("assistant", "A lock for one thread at a time.")]
    other = [("user", "What is a semaphore?"), ("assistant", "A counter of permits.")]
    asked = dialog(("system", "Be brief."), *history, ("user", "Can you give me an example?"))
    reworded = dialog(("system", "Be wordy."), *history, ("user", "Could you give me an example?"))
    elsewhere = dialog(*other, ("user", "Can you give me an example?"))

    # 4 messages, 3 once the system message is ignored: within max-message-count="3".
    assert await status(gateway_client, asked, "ctx-conv") == "MISS"
    assert await status(gateway_client, reworded, "ctx-conv") == "HIT"
    assert await status(gateway_client, elsewhere, "ctx-conv") == "MISS"
    alone = dialog(("user", "Could you give me an example?"))
    assert await status(gateway_client, alone, "ctx-conv") == "MISS"


async def test_the_trace_says_how_the_context_matched_without_any_text(
    gateway_client: httpx.AsyncClient,
) -> None:
    history = [("user", "Name a prime number."), ("assistant", "Seven.")]
    body = dialog(*history, ("user", "And an even one?"))
    await status(gateway_client, body, "ctx-trace", api="keep-system")
    headers = {**who("ctx-trace"), "X-Reprise-Trace": "true"}
    again = await post(gateway_client, body, api="keep-system", headers=headers)

    steps = {s["step"]: s for s in json.loads(again.headers["x-reprise-trace"])}
    assert steps["partition"]["context"] == "exact (2 messages, 26 chars)"
    assert steps["partition"]["question_chars"] == len("And an even one?")
    assert (
        steps["decision"]["reason"]
        == "context: exact (2 messages, 26 chars); question: exact match"
    )
    assert "prime" not in again.headers["x-reprise-trace"]


async def test_responses_instructions_are_context_unless_system_messages_are_ignored(
    gateway_client: httpx.AsyncClient,
) -> None:
    def body(instructions: str) -> dict[str, Any]:
        return {"model": "gpt-4o", "instructions": instructions, "input": "Name three owls."}

    for api, expected in (("chat", "HIT"), ("keep-system", "MISS")):
        key = f"ctx-responses-{api}"
        assert (
            await status(gateway_client, body("Be terse."), key, api=api, endpoint="/v1/responses")
            == "MISS"
        )
        second = await status(
            gateway_client, body("Answer as a pirate."), key, api=api, endpoint="/v1/responses"
        )
        assert second == expected, api


async def test_a_long_legacy_prompt_is_split_like_a_chat_turn(
    gateway_client: httpx.AsyncClient,
) -> None:
    def body(question: str, document: str = DOCUMENT) -> dict[str, Any]:
        return {"model": "gpt-3.5-turbo-instruct", "prompt": f"{document}\n\n{question}"}

    legacy = {"endpoint": "/v1/completions", "api": "keep-system"}
    question = "How many pallets a day does section 3 handle?"
    assert await status(gateway_client, body(question), "ctx-legacy", **legacy) == "MISS"
    assert await status(gateway_client, body(question), "ctx-legacy", **legacy) == "HIT"
    other = "When does the depot open in section 4?"
    assert await status(gateway_client, body(other), "ctx-legacy", **legacy) == "MISS"
    changed = DOCUMENT.replace("43 pallets", "34 pallets")
    assert changed != DOCUMENT
    assert await status(gateway_client, body(question, changed), "ctx-legacy", **legacy) == "MISS"
