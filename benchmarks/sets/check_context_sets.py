"""Check conversations.jsonl and long_prompts.jsonl against the formats in README.md.

    .venv/bin/python benchmarks/sets/check_context_sets.py [conversations.jsonl ...]

Checks both sets unless given file names. Exits non-zero and lists every problem found;
prints counts otherwise.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CONVERSATION_KEYS = {"id", "group", "messages", "follow_up", "follow_up_reworded"}
LONG_PROMPT_KEYS = {
    "id", "document", "document_variant", "question", "question_reworded", "other_question",
}  # fmt: skip
MIN_CONVERSATIONS, MIN_LONG_PROMPTS = 130, 32
DOCUMENT_WORDS = (350, 900)
MAX_CHANGED_WORDS = 8  # the variant changes one fact: a number, a date, a name, a "not"


def read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}:{number}: not JSON ({error})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path.name}:{number}: not an object")
            continue
        rows.append(row)
    return rows


def check_messages(where: str, messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"{where}: messages must be a non-empty list"]
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if any(not isinstance(m, dict) or not str(m.get("content", "")).strip() for m in messages):
        return [f"{where}: every message needs a role and non-empty content"]
    turns = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(turns) // 2)
    if turns != expected or not turns:
        return [f"{where}: roles {roles} are not [system] user/assistant pairs"]
    return []


def check_conversations(path: Path) -> list[str]:
    problems: list[str] = []
    rows = read_jsonl(path, problems)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        where = f"{path.name} {row.get('id')}"
        if set(row) != CONVERSATION_KEYS:
            problems.append(f"{where}: keys {sorted(row)} != {sorted(CONVERSATION_KEYS)}")
            continue
        problems += check_messages(where, row["messages"])
        if row["follow_up"].strip().lower() == row["follow_up_reworded"].strip().lower():
            problems.append(f"{where}: follow_up_reworded repeats follow_up")
        groups[row["group"]].append(row)
    problems += check_ids(path, rows, MIN_CONVERSATIONS)
    for group, members in groups.items():
        problems += check_group(group, members)
    problems += check_generic_follow_ups(groups)
    return problems


def first_user_turn(row: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in row["messages"] if m["role"] == "user")


def check_group(group: str, members: list[dict[str, Any]]) -> list[str]:
    problems = []
    if not 2 <= len(members) <= 4:
        problems.append(f"group {group}: {len(members)} conversations, expected 2-4")
    if len({first_user_turn(row) for row in members}) != 1:
        problems.append(f"group {group}: conversations don't share their first user turn")
    requests = [json.dumps([row["messages"], row["follow_up"]]) for row in members]
    if len(set(requests)) != len(requests):
        problems.append(f"group {group}: two conversations are the same request")
    return problems


def check_generic_follow_ups(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The set exists to catch caches that ignore history: generic follow-ups must recur."""
    groups_of: dict[str, set[str]] = defaultdict(set)
    for group, members in groups.items():
        for row in members:
            groups_of[row["follow_up"]].add(group)
    recurring = [text for text, where in groups_of.items() if len(where) >= 3]
    if len(recurring) < 5:
        return [f"only {len(recurring)} follow-ups recur in 3+ groups, expected 5 or more"]
    return []


def check_ids(path: Path, rows: list[dict[str, Any]], minimum: int) -> list[str]:
    problems = []
    ids = Counter(row.get("id") for row in rows)
    problems += [f"{path.name}: id {i} used {n} times" for i, n in ids.items() if n > 1]
    if len(rows) < minimum:
        problems.append(f"{path.name}: {len(rows)} rows, expected at least {minimum}")
    return problems


def changed_words(document: str, variant: str) -> int:
    matcher = difflib.SequenceMatcher(a=document.split(), b=variant.split(), autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    return sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in changes)


def check_long_prompts(path: Path) -> list[str]:
    problems: list[str] = []
    rows = read_jsonl(path, problems)
    for row in rows:
        where = f"{path.name} {row.get('id')}"
        if not LONG_PROMPT_KEYS <= set(row) <= LONG_PROMPT_KEYS | {"system"}:
            problems.append(f"{where}: keys {sorted(row)} don't match the format")
            continue
        words = len(row["document"].split())
        if not DOCUMENT_WORDS[0] <= words <= DOCUMENT_WORDS[1]:
            problems.append(f"{where}: document has {words} words, expected {DOCUMENT_WORDS}")
        changed = changed_words(row["document"], row["document_variant"])
        if not 1 <= changed <= MAX_CHANGED_WORDS:
            problems.append(f"{where}: variant changes {changed} words, expected one small edit")
        questions = [row["question"], row["question_reworded"], row["other_question"]]
        if len({q.strip().lower() for q in questions}) != 3:
            problems.append(f"{where}: the three questions must differ")
    problems += check_ids(path, rows, MIN_LONG_PROMPTS)
    return problems


CHECKS = {"conversations.jsonl": check_conversations, "long_prompts.jsonl": check_long_prompts}


def main(names: list[str]) -> int:
    problems = []
    for name in names or list(CHECKS):
        check = CHECKS[Path(name).name]
        path = HERE / Path(name).name
        if path.exists():
            found = check(path)
            problems += found
            rows = len(path.read_text(encoding="utf-8").splitlines())
            print(f"{name}: {rows} rows, {len(found)} problems")
        else:
            problems.append(f"{name}: missing")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
