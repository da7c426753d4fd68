"""`reprise bench context`: wrong hits across conversations and documents, through `SemanticCache`.

Conversations (`conversations.jsonl`): each conversation's follow-up is stored in
a partition of its own; then the same follow-up words are looked up after every
other conversation of its group and a seeded sample of other groups, and sent
alone, and so are those conversations' own (different) follow-ups. Any hit
there serves one conversation's answer in another: a wrong hit. The reworded
follow-up in the same conversation should hit.

Long prompts (`long_prompts.jsonl`): `document + question` is stored (behind the
entry's system prompt, if any), then the cases of issue #11 are looked up: the
same document with another question, the question reworded, the one-fact
variant with the question and with its rewording, another system prompt, an
exact repeat; and the same with the question placed before the document.

Every case runs twice: with Reprise's structured keys, and with layout 1 (the
whole request flattened into one text, embedded by a model that reads only its
first 256 word pieces) as the baseline the issue measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise._bench import report
from reprise._cache import SemanticCache
from reprise._embedders.local import LocalEmbedder, TokenEmbeddings
from reprise._prompt import Prompt, from_messages
from reprise._protocols import Vector

Messages = list[dict[str, str]]
OTHER_SYSTEM = "You are a pirate who answers every question in rhymes."
LAYOUTS = ("structured", "flattened")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sets = Path("benchmarks") / "sets"
    parser.add_argument("--conversations", default=str(sets / "conversations.jsonl"))
    parser.add_argument("--long-prompts", default=str(sets / "long_prompts.jsonl"))
    parser.add_argument(
        "--other-groups", type=int, default=6, help="conversations of other groups per follow-up"
    )
    parser.add_argument("--threshold", type=float, default=None, help="default: the cache's")
    parser.add_argument("--out", default="benchmarks", help="directory for context.md / .json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    for name in (args.conversations, args.long_prompts):
        if not Path(name).is_file():
            print(f"reprise bench context: no such file {name}", file=sys.stderr)
            return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return asyncio.run(_main(args))


@dataclass(slots=True)
class Case:
    """One kind of lookup: how many, and how many hit, per key layout."""

    name: str
    expected: str  # "hit" or "miss"
    lookups: int = 0
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYOUTS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in LAYOUTS})

    def row(self) -> list[Any]:
        cells: list[Any] = [self.name, self.expected, self.lookups]
        for layout in LAYOUTS:
            hits = self.hits[layout]
            wrong = hits if self.expected == "miss" else self.lookups - hits
            cells += [f"{hits} ({report.pct(hits / self.lookups)})", wrong]
        return cells


class Bench:
    """Both caches, and the cases filled in as lookups are made."""

    def __init__(self, caches: dict[str, SemanticCache], threshold: float | None) -> None:
        self.caches = caches
        self.threshold = threshold
        self.cases: dict[str, Case] = {}

    async def store(self, partition: str, messages: Messages) -> None:
        for layout, cache in self.caches.items():
            await cache.store(_prompt(layout, messages), "answer", partition)

    async def probe(
        self, name: str, expected: str, partition: str, messages: Messages, label: str
    ) -> None:
        case = self.cases.setdefault(name, Case(name, expected))
        case.lookups += 1
        for layout, cache in self.caches.items():
            found = await cache.explain(
                _prompt(layout, messages), partition, threshold=self.threshold
            )
            if found.hit is not None:
                case.hits[layout] += 1
                if (expected == "miss") and len(case.examples[layout]) < 5:
                    case.examples[layout].append(label)

    async def clear(self, partition: str) -> None:
        for cache in self.caches.values():
            await cache.clear(partition)


def _prompt(layout: str, messages: Messages) -> Prompt:
    if layout == "structured":
        return from_messages(messages)
    return flattened(messages)


def flattened(messages: Messages) -> Prompt:
    """Layout 1: one text of "role: content" lines (a lone user turn as itself), no context."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    if len(messages) == 1 and messages[0]["role"] == "user":
        lines = [messages[0]["content"]]
    return Prompt("\n".join(lines), message_count=len(messages))


class Truncating:
    """The local model without `fits`: it reads what fits its window and drops the rest."""

    def __init__(self, model: LocalEmbedder) -> None:
        self.model = model

    @property
    def dims(self) -> int:
        return self.model.dims

    async def embed(self, texts: Sequence[str]) -> Vector:
        return await self.model.embed(texts)

    async def embed_tokens(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        return await self.model.embed_tokens(texts)

    async def aclose(self) -> None:
        await self.model.aclose()


async def conversations(bench: Bench, rows: list[dict[str, Any]], others: int, seed: int) -> None:
    rng = random.Random(seed)
    for c in rows:
        partition = f"conversation-{c['id']}"
        await bench.store(partition, [*c["messages"], _user(c["follow_up"])])
        reworded = [*c["messages"], _user(c["follow_up_reworded"])]
        await bench.probe("reworded follow-up, same conversation", "hit", partition, reworded, "")
        same_group = [d for d in rows if d["group"] == c["group"] and d["id"] != c["id"]]
        elsewhere = [d for d in rows if d["group"] != c["group"]]
        for d in same_group + rng.sample(elsewhere, min(others, len(elsewhere))):
            if d["messages"] == c["messages"]:
                continue  # the very same conversation: its answer would be right
            name = f"same follow-up after another conversation ({_where(c, d)})"
            label = f"{c['follow_up']!r} after {d['id']} served {c['id']}'s answer"
            asked = [*d["messages"], _user(c["follow_up"])]
            await bench.probe(name, "miss", partition, asked, label)
            if d["follow_up"] != c["follow_up"]:
                name = f"another conversation's own follow-up ({_where(c, d)})"
                label = f"{d['id']}'s {d['follow_up']!r} served {c['id']}'s answer"
                asked = [*d["messages"], _user(d["follow_up"])]
                await bench.probe(name, "miss", partition, asked, label)
        alone = [_user(c["follow_up"])]
        label = f"{c['follow_up']!r} alone served {c['id']}'s answer"
        await bench.probe("same follow-up sent alone", "miss", partition, alone, label)
        await bench.clear(partition)


def _where(c: dict[str, Any], d: dict[str, Any]) -> str:
    return "same group" if d["group"] == c["group"] else "other group"


async def long_prompts(bench: Bench, rows: list[dict[str, Any]]) -> None:
    for e in rows:
        doc, variant = e["document"], e["document_variant"]
        q, reworded, other = e["question"], e["question_reworded"], e["other_question"]
        system = e.get("system") or None
        partition = f"document-{e['id']}"

        def asked(first: str, second: str, sys_prompt: str | None = system) -> Messages:
            head = [{"role": "system", "content": sys_prompt}] if sys_prompt else []
            return [*head, _user(f"{first}\n\n{second}")]

        await bench.store(partition, asked(doc, q))
        label = e["id"]
        cases = [
            ("document + question reworded", "hit", asked(doc, reworded)),
            ("document + question, exact repeat", "hit", asked(doc, q)),
            ("document + another question", "miss", asked(doc, other)),
            ("one-fact variant + question", "miss", asked(variant, q)),
            ("one-fact variant + question reworded", "miss", asked(variant, reworded)),
            ("another system prompt, same document + question", "miss",
             asked(doc, q, OTHER_SYSTEM)),
        ]  # fmt: skip
        for name, expected, messages in cases:
            await bench.probe(name, expected, partition, messages, label)
        await bench.clear(partition)
        # The question first ("Summarise the following: <doc>"): its key is exact-only.
        await bench.store(partition, asked(q, doc))
        await bench.probe("question first, reworded", "hit", partition, asked(reworded, doc), "")
        await bench.probe("question first, another question", "miss", partition,
                          asked(other, doc), label)  # fmt: skip
        await bench.clear(partition)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _load(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


async def _main(args: argparse.Namespace) -> int:
    started = time.time()
    caches = {
        "structured": SemanticCache(store=":memory:"),
        "flattened": SemanticCache(store=":memory:", embedder=Truncating(LocalEmbedder())),
    }
    for cache in caches.values():
        await cache.open()
    bench = Bench(caches, args.threshold)
    try:
        convs = _load(args.conversations)
        docs = _load(args.long_prompts)
        _progress(args, f"{len(convs)} conversations")
        await conversations(bench, convs, args.other_groups, args.seed)
        conv_cases = dict(bench.cases)
        bench.cases = {}
        _progress(args, f"{len(docs)} long prompts")
        await long_prompts(bench, docs)
        doc_cases = bench.cases
    finally:
        for cache in caches.values():
            await cache.aclose()
    threshold = (
        args.threshold if args.threshold is not None else caches["structured"].score_threshold
    )
    text = _markdown(args, convs, docs, conv_cases, doc_cases, threshold, time.time() - started)
    (Path(args.out) / "context.md").write_text(text)
    payload = {
        "threshold": threshold,
        "conversations": [_as_dict(c) for c in conv_cases.values()],
        "long_prompts": [_as_dict(c) for c in doc_cases.values()],
        "machine": report.machine(),
        "load_average": os.getloadavg(),
    }
    (Path(args.out) / "context.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(text)
    return 0


def _progress(args: argparse.Namespace, what: str) -> None:
    if not args.no_progress:
        print(f"reprise bench context: {what}...", file=sys.stderr, flush=True)


def _as_dict(case: Case) -> dict[str, Any]:
    return {"case": case.name, "expected": case.expected, "lookups": case.lookups,
            "hits": case.hits, "wrong_examples": case.examples}  # fmt: skip


def _markdown(
    args: argparse.Namespace,
    convs: list[dict[str, Any]],
    docs: list[dict[str, Any]],
    conv_cases: dict[str, Case],
    doc_cases: dict[str, Case],
    threshold: float,
    seconds: float,
) -> str:
    header = ["case", "expected", "lookups", "structured: hits", "wrong",
              "flattened (layout 1): hits", "wrong"]  # fmt: skip
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    wrong = {layout: _wrong(list(conv_cases.values()) + list(doc_cases.values()), layout)
             for layout in LAYOUTS}  # fmt: skip
    parts = [
        "# Conversations and long prompts: wrong hits across contexts",
        "",
        "`reprise bench context` (reprise/_bench/context.py), through `SemanticCache` with the "
        f"default verifier at score_threshold {threshold}, all-MiniLM-L6-v2, embedded store. "
        "**structured**: the question by meaning, everything else as an exact context digest "
        "(this release); **flattened**: layout 1, the whole request as one text, embedded by a "
        "model that reads its first 256 word pieces (the behaviour issue #11 measured). A "
        "wrong lookup is a hit where a miss is expected (a wrong answer served), or a miss "
        "where a hit is expected (a lost saving).",
        "",
        f"Wrong answers served: structured {wrong['structured']}, flattened {wrong['flattened']}.",
        "",
        f"## Conversations ({len(convs)} from `{args.conversations}`, "
        f"{len({c['group'] for c in convs})} groups)",
        "",
        "Each conversation's follow-up is stored in a partition of its own, then looked up "
        "reworded in the same conversation, after every other conversation of its group and "
        f"{args.other_groups} seeded conversations of other groups, and alone; those other "
        "conversations' own follow-ups (when their words differ) are looked up too.",
        "",
        report.table(header, [c.row() for c in conv_cases.values()]),
        "",
        f"## Long prompts ({len(docs)} from `{args.long_prompts}`)",
        "",
        "`document + question` is stored (behind the entry's system prompt, if any); each "
        'case is one lookup per entry. "question first" stores `question + document`: its '
        "key is exact-only (the final paragraph is the document's), so rewordings miss.",
        "",
        report.table(header, [c.row() for c in doc_cases.values()]),
        "",
        _examples(conv_cases, doc_cases),
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {seconds:.0f} s, load "
        f"average {load}; {report.machine_line(report.machine())}.",
        "",
    ]
    return "\n".join(parts)


def _wrong(cases: list[Case], layout: str) -> str:
    served = sum(c.hits[layout] for c in cases if c.expected == "miss")
    lookups = sum(c.lookups for c in cases if c.expected == "miss")
    return f"{served} of {lookups} lookups that must miss ({report.pct(served / lookups)})"


def _examples(*groups: dict[str, Case]) -> str:
    lines = []
    for cases in groups:
        for case in cases.values():
            for layout in LAYOUTS:
                for label in case.examples[layout][:2]:
                    lines.append(f"- {layout}, {case.name}: {label}")
    if not lines:
        return ""
    return "Examples of wrong hits:\n\n" + "\n".join(lines) + "\n"
