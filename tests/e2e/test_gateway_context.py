"""Conversations and long prompts through `reprise serve`, driven by the openai SDK.

The gateway keys a request by its question (the last user turn, or the final
paragraph of a long one), matched by meaning, and by everything else, matched
exactly. Each case of issue #11 runs on three instances, each test with an API
key of its own (without subscriptions, every credential is its own partition).
The documents are longer than the model's 256-word-piece window.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from reprise.testing import FakeUpstreamServer, GatewayServer

pytestmark = pytest.mark.e2e

POLICIES = """
      <policies>
        <inbound>
          <llm-semantic-cache-lookup score-threshold="0.2" embeddings-backend-id="embed"
              ignore-system-messages="{ignore}" />
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="600" />
        </outbound>
      </policies>"""


def config_yaml(upstream: str) -> str:
    apis = "".join(
        f"""
  - name: {name}
    path: /{name}
    backend: llm
    policies: |{POLICIES.format(ignore=ignore)}
"""
        for name, ignore in [("ctx", "false"), ("ctx-ignore", "true")]
    )
    return f"""
backends:
  llm: {{ url: "{upstream}/v1" }}
  embed: {{ url: local }}
cache: {{ url: ":memory:", lookup-budget-ms: 5000 }}
apis:{apis}
"""


# Three documents, each with a fact, its changed variant, a question about the
# fact, the question reworded and another question about the same document.
DOCUMENTS = [
    (
        "Northwind Traders: Remote Work Policy (2025)\n\n"
        "1. Scope. This policy covers every permanent employee of Northwind Traders in the "
        "Lisbon, Porto and Madrid offices. Contractors follow the terms agreed with their agency "
        "and are not covered here.\n\n"
        "2. Office days. Employees work from the office at least three days per week. "
        "Teams choose their shared office day with their manager, and attendance is reviewed "
        "as a monthly average, so holidays and sick days never count against anyone.\n\n"
        "3. Core hours. When working remotely, employees must be reachable between 10:00 and "
        "15:00 local time on chat and video. Meetings outside those hours need the agreement "
        "of everyone invited.\n\n"
        "4. Working abroad. Working from another country requires written approval from the "
        "People team at least three weeks in advance, and is limited to 15 working days in a "
        "calendar year because of tax and data protection rules.\n\n"
        "5. Equipment. The company provides a laptop, a monitor and a headset. Employees may "
        "claim up to 200 euros every two years towards a desk or a chair, with receipts. Home "
        "internet and electricity are not reimbursed.\n\n"
        "6. Review. The People team reviews this policy every January and announces changes "
        "on the intranet at least one month before they take effect.",
        ("three days per week", "four days per week"),
        "How many days per week must employees work from the office?",
        "Can you tell me how many days per week employees must work from the office?",
        "How much can employees claim for a desk or a chair?",
    ),
    (
        "AquaPure 300 Water Filter Jug: User Guide\n\n"
        "Before first use. Wash the jug, the lid and the reservoir in warm soapy water and "
        "rinse them well. Do not put any part in the dishwasher. Soak the new cartridge in "
        "cold water for 15 minutes, then insert it into the reservoir and press it down "
        "firmly until it clicks.\n\n"
        "Filling. Fill the reservoir with cold tap water only. The first two fillings must be "
        "thrown away, because they flush carbon dust out of the cartridge. After that the "
        "water is ready to drink.\n\n"
        "Cartridge life. One cartridge filters 150 litres, which is about four weeks for a "
        "household of two. The indicator on the lid counts the days since the last change and "
        "turns red when it is time for a new cartridge. Hold the button for three seconds to "
        "reset it after a change.\n\n"
        "Storage. Keep the jug in the fridge or in a cool place out of direct sunlight. If you "
        "have not used it for more than two days, throw the water away and refill it.\n\n"
        "Warranty. The jug has a two-year warranty against manufacturing defects. Cartridges "
        "are consumables and are not covered. Keep your receipt as proof of purchase.",
        ("150 litres", "100 litres"),
        "How many litres does one cartridge filter?",
        "How many litres can one cartridge filter?",
        "How long is the warranty on the jug?",
    ),
    (
        "Minutes of the Riverside Allotment Society committee meeting, 12 March\n\n"
        "Present: the chair, the treasurer, the secretary and four plot holders. Apologies "
        "were received from two members.\n\n"
        "Water supply. The mains water will be turned on again on 1 April after the winter "
        "shutdown. The treasurer reported that the repair of the leaking pipe near plot 14 "
        "cost 340 pounds, which is within the maintenance budget.\n\n"
        "Plot inspections. The first inspection of the season will take place on 26 April. "
        "Plot holders whose plots are less than half cultivated will receive a friendly "
        "reminder, and a formal notice only after a second inspection in June.\n\n"
        "Bonfires. The committee agreed that bonfires remain banned between May and September. "
        "Outside those months they are allowed on weekdays after 18:00 only, and never when "
        "the wind blows towards the houses on Mill Lane.\n\n"
        "Open day. The annual open day will be held on Saturday 7 June from 11:00 to 16:00, "
        "with a plant sale and a children's scarecrow competition. Volunteers should contact "
        "the secretary.\n\n"
        "Any other business. A member asked about a shared tool shed; the treasurer will "
        "price one for the next meeting.",
        ("on 1 April", "on 15 April"),
        "When will the mains water be turned on again?",
        "When is the mains water turned on again?",
        "When is the annual open day?",
    ),
]

# Conversations that share a follow-up's words but not what came before.
CONVERSATIONS = [
    (
        [("What is a mutex?", "A lock that lets one thread at a time into a critical section.")],
        [("What is a semaphore?", "A counter that lets up to N threads in at once.")],
        "Can you give me an example?",
        "Could you give me an example?",
    ),
    (
        [("Who was Julius Caesar?", "A Roman general and statesman, dictator from 49 BC.")],
        [("Who was Cleopatra?", "The last active ruler of the Ptolemaic Kingdom of Egypt.")],
        "How did they die?",
        "how did they die",
    ),
    (
        [("Write a haiku about autumn.", "Crisp leaves drift and fall / the year exhales")],
        [("Write a limerick about a cat.", "A cat with a taste for the cream ...")],
        "Translate that into French.",
        "Please translate that into French.",
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstreamServer, start_gateway: Callable[[str], GatewayServer]
) -> GatewayServer:
    return start_gateway(config_yaml(fake_upstream.url))


@pytest_asyncio.fixture
async def client(gateway: GatewayServer) -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:
    """SDK clients, each with a fresh key: a partition of its own."""
    made: list[openai.AsyncOpenAI] = []

    def make(api: str = "ctx") -> openai.AsyncOpenAI:
        key = f"sk-{uuid.uuid4().hex}"
        made.append(openai.AsyncOpenAI(base_url=f"{gateway.url}/{api}/v1", api_key=key))
        return made[-1]

    yield make
    for sdk in made:
        await sdk.close()


async def ask(
    sdk: openai.AsyncOpenAI, messages: list[dict[str, str]], *, store: bool = True
) -> tuple[str, Any]:
    """(X-Cache-Status, trace steps) once the answer's store has landed."""
    headers = {"X-Reprise-Trace": "true"} | ({} if store else {"Cache-Control": "no-store"})
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=messages,  # type: ignore[arg-type]
        extra_headers=headers,
    )
    raw.parse()
    await _settled(str(sdk.base_url))
    return raw.headers["x-cache-status"], json.loads(raw.headers["x-reprise-trace"])


async def _settled(base_url: str) -> None:
    root = "/".join(base_url.split("/", 3)[:3])
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if (await http.get(f"{root}/healthz")).json()["pending_stores"] == 0:
                return
            await asyncio.sleep(0.02)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def history(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for question, answer in turns:
        out += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return out


def decision(trace: Any) -> str:
    return str(next(step for step in trace if step["step"] == "decision")["reason"])


# -- long documents


@pytest.mark.parametrize("case", DOCUMENTS, ids=["policy", "manual", "minutes"])
async def test_the_same_document_with_a_different_question_misses(
    client: Callable[..., openai.AsyncOpenAI], case: Any
) -> None:
    document, _, question, _, other = case
    sdk = client()
    assert (await ask(sdk, user(f"{document}\n\n{question}")))[0] == "MISS"

    status, trace = await ask(sdk, user(f"{document}\n\n{other}"))

    assert status == "MISS"
    assert decision(trace).startswith("context: exact (")


@pytest.mark.parametrize("case", DOCUMENTS, ids=["policy", "manual", "minutes"])
async def test_the_same_document_with_the_question_reworded_hits(
    client: Callable[..., openai.AsyncOpenAI], case: Any
) -> None:
    document, _, question, reworded, _ = case
    sdk = client()
    assert (await ask(sdk, user(f"{document}\n\n{question}")))[0] == "MISS"

    status, trace = await ask(sdk, user(f"{document}\n\n{reworded}"))
    repeat, _ = await ask(sdk, user(f"{document}\n\n{question}"))

    assert status == "HIT"
    reason = decision(trace)
    assert reason.startswith(f"context: exact ({len(document) + 2} chars before the question")
    assert "; question: distance 0.0" in reason
    assert repeat == "HIT"  # an exact repeat of the whole long request


@pytest.mark.parametrize("case", DOCUMENTS, ids=["policy", "manual", "minutes"])
async def test_a_different_document_with_the_same_question_misses(
    client: Callable[..., openai.AsyncOpenAI], case: Any
) -> None:
    document, (fact, changed), question, reworded, _ = case
    variant = document.replace(fact, changed)
    assert variant != document
    sdk = client()
    assert (await ask(sdk, user(f"{document}\n\n{question}")))[0] == "MISS"

    assert (await ask(sdk, user(f"{variant}\n\n{question}"), store=False))[0] == "MISS"
    assert (await ask(sdk, user(f"{variant}\n\n{reworded}"), store=False))[0] == "MISS"
    assert (await ask(sdk, user(f"{document}\n\n{reworded}"), store=False))[0] == "HIT"


# -- system prompts


SYSTEM_PROMPTS = [
    ("You are a support bot for Contoso.", "You are a pirate who answers in rhymes."),
    ("Answer in French.", "Answer in German."),
    ("You are a helpful assistant.", "You are a helpful assistant. Keep answers under 20 words."),
]


@pytest.mark.parametrize(("first", "second"), SYSTEM_PROMPTS, ids=["persona", "lang", "len"])
async def test_a_different_system_prompt_misses_unless_system_messages_are_ignored(
    client: Callable[..., openai.AsyncOpenAI], first: str, second: str
) -> None:
    question = "What is the tallest mountain in Africa?"
    for api, expected in [("ctx", "MISS"), ("ctx-ignore", "HIT")]:
        sdk = client(api)
        cached = [{"role": "system", "content": first}, *user(question)]
        other = [{"role": "system", "content": second}, *user(question)]
        assert (await ask(sdk, cached))[0] == "MISS"
        assert (await ask(sdk, other))[0] == expected, api


# -- conversations


@pytest.mark.parametrize("case", CONVERSATIONS, ids=["example", "died", "translate"])
async def test_the_same_follow_up_after_different_conversations_misses(
    client: Callable[..., openai.AsyncOpenAI], case: Any
) -> None:
    first, other, follow_up, _ = case
    sdk = client()
    assert (await ask(sdk, [*history(first), *user(follow_up)]))[0] == "MISS"

    status, trace = await ask(sdk, [*history(other), *user(follow_up)])

    assert status == "MISS"
    assert decision(trace).startswith("context: exact (2 messages")


@pytest.mark.parametrize("case", CONVERSATIONS, ids=["example", "died", "translate"])
async def test_a_follow_up_sent_alone_never_hits_the_conversation(
    client: Callable[..., openai.AsyncOpenAI], case: Any
) -> None:
    first, _, follow_up, reworded = case
    sdk = client()
    assert (await ask(sdk, [*history(first), *user(follow_up)]))[0] == "MISS"

    assert (await ask(sdk, user(follow_up)))[0] == "MISS"
    assert (await ask(sdk, user(reworded)))[0] == "HIT"  # ...which hit the lone entry


@pytest.mark.parametrize("case", CONVERSATIONS, ids=["example", "died", "translate"])
async def test_a_reworded_follow_up_in_the_same_conversation_hits(
    client: Callable[..., openai.AsyncOpenAI], case: Any
) -> None:
    first, _, follow_up, reworded = case
    sdk = client()
    assert (await ask(sdk, [*history(first), *user(follow_up)]))[0] == "MISS"

    status, trace = await ask(sdk, [*history(first), *user(reworded)])

    assert status == "HIT"
    assert decision(trace).startswith("context: exact (2 messages")
