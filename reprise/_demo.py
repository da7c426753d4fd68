"""`reprise demo`: the gateway in front of a SIMULATED LLM, driven by the openai SDK.

Everything runs in this process: a simulated chat-completions backend (the
fake upstream of `reprise.testing` with canned answers after `--latency`
seconds, so nothing is billed and no key is needed),
the gateway on the embedded default (the local model, a data directory), and
the official `openai` client calling the gateway. The workload mixes repeats,
paraphrases, which should hit, and near misses that only differ in a number,
a language, a direction or a negation, which must not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import tempfile
import time
from dataclasses import dataclass
from typing import Any

THRESHOLD = 0.15  # APIM's example; the default verifier rejects near misses inside it

# (expected outcome, prompt). "HIT" and "MISS" are what a correct cache does.
WORKLOAD: list[tuple[str, str]] = [
    ("MISS", "What is the capital of France?"),
    ("HIT", "What's the capital of France?"),
    ("HIT", "Which city is the capital of France?"),
    ("MISS", "What is 17 times 23?"),
    ("MISS", "What is 18 times 23?"),
    ("HIT", "Can you tell me what 17 times 23 is?"),
    ("MISS", "How do I reverse a list in Python?"),
    ("HIT", "How can I reverse a list in Python?"),
    ("MISS", "How do I reverse a list in JavaScript?"),
    ("MISS", "Translate 'good morning' into Spanish."),
    ("MISS", "Translate 'good morning' into French."),
    ("MISS", "How do I turn on dark mode in VS Code?"),
    ("MISS", "How do I turn off dark mode in VS Code?"),
    ("HIT", "how do i turn on dark mode in vs code"),
    ("MISS", "What is the cheapest way to fly from New York to London?"),
    ("MISS", "What is the cheapest way to fly from London to New York?"),
    ("HIT", "What is the capital of France?"),
    ("HIT", "What is 17 times 23?"),
    ("MISS", "Translate 'good evening' into Spanish."),
]
STREAMED = "Explain in two sentences what a semantic cache is."

_ANSWERS: list[tuple[str, str]] = [
    (r"capital of france", "The capital of France is Paris."),
    (r"python", "Use my_list.reverse() to reverse in place, or my_list[::-1] for a copy."),
    (r"javascript", "Use array.reverse() (in place) or [...array].reverse() for a copy."),
    (r"evening.*spanish", "'Good evening' in Spanish is 'Buenas tardes' or 'Buenas noches'."),
    (r"spanish", "'Good morning' in Spanish is 'Buenos días'."),
    (r"french", "'Good morning' in French is 'Bonjour'."),
    (r"turn off dark mode", "Pick a light theme: Preferences > Theme > Color Theme > Light+."),
    (r"dark mode", "Pick a dark theme: Preferences > Theme > Color Theme > Dark+."),
    (r"from new york to london", "Off-season direct economy fares NYC to London are cheapest."),
    (r"from london to new york", "Book London to NYC mid-week, several weeks ahead."),
    (
        r"semantic cache",
        "A semantic cache stores LLM answers and serves one again when a new prompt "
        "means the same as a cached one. It saves time and tokens on repeated questions.",
    ),
]


def simulated_answer(prompt: str, call: int = 1) -> str:
    """A canned answer (the same on every call), for the fake upstream's `answer=`."""
    product = re.search(r"(\d+)\s*(?:times|x|\*|multiplied by)\s*(\d+)", prompt, re.I)
    if product:
        a, b = int(product.group(1)), int(product.group(2))
        return f"{a} times {b} is {a * b}."
    for pattern, answer in _ANSWERS:
        if re.search(pattern, prompt, re.I):
            return answer
    return f"(simulated answer to: {prompt})"


def _config_yaml(llm_port: int, data_dir: str) -> str:
    return f"""
backends:
  simulated-llm: {{ url: "http://127.0.0.1:{llm_port}/v1" }}
  embeddings: {{ url: local }}
cache: {{ url: "{data_dir}", lookup-budget-ms: 1000 }}  # kind to slow laptops
apis:
  - name: demo
    path: /demo
    backend: simulated-llm
    policies: |
      <policies>
        <inbound>
          <base />
          <llm-semantic-cache-lookup score-threshold="{THRESHOLD}"
              embeddings-backend-id="embeddings" ignore-system-messages="true" />
        </inbound>
        <outbound>
          <llm-semantic-cache-store duration="3600" />
          <base />
        </outbound>
      </policies>
"""


@dataclass
class Outcome:
    prompt: str
    status: str
    score: str
    ms: float
    answer: str
    expected: str = ""


async def _serve(app: Any, port: int) -> tuple[Any, asyncio.Task[None]]:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # surfaces the startup error
        await asyncio.sleep(0.05)
    return server, task


async def _main(latency: float, data_dir: str) -> int:
    import openai

    from reprise._gateway.app import create_app
    from reprise._gateway.config import parse_config
    from reprise.testing import FakeUpstream, free_port

    logging.getLogger("reprise").setLevel(logging.WARNING)
    llm = FakeUpstream(latency, answer=simulated_answer)
    llm_port, gw_port = free_port(), free_port()
    print(f"Reprise demo: gateway -> SIMULATED LLM (canned answers after {latency:.1f} s).")
    print(f"Cache: embedded store in {data_dir}, local all-MiniLM-L6-v2, threshold {THRESHOLD}.")
    print("Starting (loading the embedding model)...\n")
    llm_server, llm_task = await _serve(llm.app, llm_port)
    app = create_app(parse_config(_config_yaml(llm_port, data_dir)))
    gw_server, gw_task = await _serve(app, gw_port)
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gw_port}/demo/v1", api_key="demo-key", max_retries=0
    )
    outcomes: list[Outcome] = []
    try:
        print(f"{'cache':7} {'score':>6} {'ms':>7}  prompt -> answer")
        for expected, prompt in WORKLOAD:
            outcome = await _ask(client, prompt)
            outcome.expected = expected
            outcomes.append(outcome)
            _print(outcome)
            await app.wait_for_stores()  # stores run after the response; let each land
        for _ in range(2):
            outcome = await _ask_streaming(client, STREAMED)
            outcomes.append(outcome)
            _print(outcome)
            await app.wait_for_stores()
    finally:
        await client.close()
        gw_server.should_exit = llm_server.should_exit = True
        await asyncio.gather(gw_task, llm_task)
    _summary(outcomes, latency, llm.total_calls)
    return 0


async def _ask(client: Any, prompt: str) -> Outcome:
    start = time.perf_counter()
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}]
    )
    ms = (time.perf_counter() - start) * 1e3
    answer = raw.parse().choices[0].message.content or ""
    status = raw.headers.get("x-cache-status", "?")
    return Outcome(prompt, status, raw.headers.get("x-cache-score", "-"), ms, answer)


async def _ask_streaming(client: Any, prompt: str) -> Outcome:
    start = time.perf_counter()
    async with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}], stream=True
    ) as raw:
        status = raw.headers.get("x-cache-status", "?")
        score = raw.headers.get("x-cache-score", "-")
        text = ""
        async for chunk in await raw.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    ms = (time.perf_counter() - start) * 1e3
    return Outcome(f"[stream] {prompt}", status, score, ms, text)


def _print(o: Outcome) -> None:
    flag = "" if not o.expected or o.expected == o.status else f"   (expected {o.expected})"
    answer = o.answer if len(o.answer) <= 60 else o.answer[:57] + "..."
    print(f"{o.status:7} {o.score:>6} {o.ms:7.0f}  {o.prompt} -> {answer}{flag}")


def _summary(outcomes: list[Outcome], latency: float, backend_calls: int) -> None:
    hits = [o for o in outcomes if o.status == "HIT"]
    misses = [o for o in outcomes if o.status != "HIT"]
    spent = sum(o.ms for o in outcomes) / 1e3
    miss_ms = sum(o.ms for o in misses) / max(1, len(misses))
    without = len(outcomes) * miss_ms / 1e3
    wrong = [o for o in outcomes if o.expected and o.expected != o.status]
    hit_ms = sorted(o.ms for o in hits)
    print()
    print(
        f"requests: {len(outcomes)}   hits: {len(hits)}   hit rate: {len(hits) / len(outcomes):.0%}"
    )
    if hit_ms:
        print(f"median hit latency: {hit_ms[len(hit_ms) // 2]:.1f} ms   miss: {miss_ms:.0f} ms")
    print(f"time spent: {spent:.1f} s   without the cache: ~{without:.1f} s")
    print(f"time saved: ~{without - spent:.1f} s; simulated LLM calls: {backend_calls}")
    if wrong:
        print(f"outcomes other than expected: {len(wrong)} (see the lines marked above)")
    else:
        print("every near miss (another number, language, direction, negation) went to the LLM.")
    print("(The LLM in this demo is SIMULATED: canned answers, artificial latency.)")


def run(args: argparse.Namespace) -> int:
    latency = float(args.latency)
    if args.data_dir:
        return asyncio.run(_main(latency, args.data_dir))
    with tempfile.TemporaryDirectory(prefix="reprise-demo-") as data_dir:
        return asyncio.run(_main(latency, data_dir))
