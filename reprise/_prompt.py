"""What a request asks, and what else its answer depends on: pure functions, no I/O.

A request is keyed by its structure, not by one flattened string:

    question   the last user turn (or the question part of a long one): embedded,
               searched and judged by the verifier, as a lone prompt always was
    context    a digest of everything else the answer depends on, matched exactly:
               system and developer messages (unless ignored), every earlier turn
               with its role and order, tool calls and results, messages after the
               last user turn, and the rest of a long last turn

A lone short user turn has no context, so single-turn prompts behave as before.
A last turn longer than `QUESTION_BUDGET` characters is split: its final
paragraph (or final sentences) is the question and the text before it joins
the context, so a pasted document is compared whole and exactly, never through
an embedding that sees only its first few hundred word pieces.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reprise._exceptions import RequestError
from reprise._protocols import KEY_LAYOUT

#: Roles that `ignore_system_messages` leaves out of the context.
SYSTEM_ROLES = frozenset({"system", "developer"})

#: A last turn longer than this many characters is split into context + question.
#: MiniLM's 256 word pieces hold about 1,000 characters of English; a question of
#: at most 500 fits with room, and a document above it no longer dominates the vector.
QUESTION_BUDGET = 500

#: A final paragraph shorter than this ("Answer:") takes the one before it along.
MIN_QUESTION = 24

#: Message fields besides the content that decide what comes next.
_EXTRA = frozenset(
    (
        "tool_calls",
        "tool_call_id",
        "name",
        "function_call",
        "call_id",
        "arguments",
        "output",
        "type",
    )
)
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n\s*")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Prompt:
    """The cacheable content of a request: `question` matched by meaning, `context` exactly.

    `question` is embedded and judged by the verifier ("" when nothing in the
    request can be: then only an exact repeat hits, and `exact_only` says why).
    `context` is a hex digest of everything else the answer depends on, "" for
    a lone user turn; `context_messages`, `context_chars` and `rest_chars`
    (the part of a long last turn before its question) describe it for traces.
    `attachments` is a digest of the non-text parts (images, audio, files);
    they go into the partition. `message_count` counts the messages
    (for APIM's `max-message-count`).
    """

    question: str
    context: str = ""
    message_count: int = 1
    attachments: str = ""
    context_messages: int = 0
    context_chars: int = 0
    exact_only: str = ""
    rest_chars: int = 0

    @classmethod
    def of(cls, prompt: str | Sequence[Mapping[str, Any]] | Prompt, **options: Any) -> Prompt:
        """A string (one user turn), a list of chat messages, or a Prompt as it is.

        `options`: `ignore_system_messages=True` leaves system and developer
        messages out of the context.
        """
        if isinstance(prompt, Prompt):
            return prompt
        if isinstance(prompt, str):
            return from_messages([{"role": "user", "content": prompt}], "prompt", **options)
        if isinstance(prompt, Sequence) and prompt:
            return from_messages(prompt, "messages", **options)
        raise RequestError("a prompt is a string or a non-empty list of chat messages")

    def key(self, partition: str) -> str:
        """The exact-tier key: equal only for the same question and context in `partition`."""
        return entry_key(partition, self.context, self.question)

    def describe_context(self) -> str:
        """How the context matched, for a trace: "none" or "exact (3 messages, 2140 chars)"."""
        if not self.context:
            return "none"
        n = self.context_messages
        parts = [f"{n} message{'' if n == 1 else 's'}"] if n or not self.rest_chars else []
        if self.rest_chars:
            parts.append(f"{self.rest_chars} chars before the question")
        return f"exact ({' + '.join(parts)}, {self.context_chars} chars)"


@dataclass(slots=True)
class _Parts:
    """The context as it is collected: JSON-able items, and their size for the trace."""

    before: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)
    turn: dict[str, Any] = field(default_factory=dict)
    chars: int = 0

    def digest(self) -> str:
        if not (self.before or self.after or self.turn):
            return ""
        material = {"before": self.before, "turn": self.turn, "after": self.after}
        return digest(material)


def from_messages(
    items: Sequence[Any], param: str = "messages", *, ignore_system_messages: bool = False
) -> Prompt:
    """The question and context of a chat (or Responses `input`) message list."""
    messages: list[tuple[str, str, dict[str, Any]]] = []
    blobs: list[Any] = []
    for i, message in enumerate(items):
        if not isinstance(message, Mapping):
            raise RequestError(f"'{param}[{i}]' must be an object", param=f"{param}[{i}]")
        role = message.get("role", "user")
        if not isinstance(role, str):
            raise RequestError(f"'{param}[{i}].role' must be a string", param=f"{param}[{i}].role")
        if ignore_system_messages and role in SYSTEM_ROLES:
            continue
        text = content_text(message.get("content"), f"{param}[{i}].content", blobs)
        # Over the message's own keys (usually role and content), not every field name;
        # the order does not matter: the context is hashed with sorted keys.
        extra = {k: v for k, v in message.items() if k in _EXTRA and v is not None}
        messages.append((role, text, extra))
    attachments = digest(blobs) if blobs else ""
    last = _last_user_turn(messages)
    if last is None:
        return _exact(messages, attachments, "no user message to match by meaning")
    parts = _Parts()
    for j, (role, text, extra) in enumerate(messages):
        if j == last:
            continue
        item = {"role": role, "text": normalise(text), **extra}
        (parts.before if j < last else parts.after).append(item)
        parts.chars += len(text)
    _, text, extra = messages[last]
    _utf8(text)
    rest, question = split_question(text)
    if extra:
        parts.turn["extra"] = extra
    if rest:
        parts.turn["rest"] = normalise(rest)
        parts.chars += len(rest)
    return Prompt(
        question,
        parts.digest(),
        len(messages),
        attachments,
        context_messages=len(parts.before) + len(parts.after),
        context_chars=parts.chars,
        exact_only="" if question.strip() else "the last user turn has no text",
        rest_chars=len(rest),
    )


def from_texts(prompts: Sequence[Any]) -> Prompt:
    """A legacy `prompt` array: one string is a user turn; several, or tokens, exact only."""
    if len(prompts) == 1 and isinstance(prompts[0], str):
        return from_messages([{"role": "user", "content": prompts[0]}], "prompt")
    reason = "several prompts" if all(isinstance(p, str) for p in prompts) else "token arrays"
    chars = sum(len(p) for p in prompts if isinstance(p, str))
    return Prompt("", digest(list(prompts)), len(prompts), "", len(prompts), chars, reason)


def _exact(messages: list[tuple[str, str, dict[str, Any]]], attachments: str, why: str) -> Prompt:
    items = [{"role": r, "text": normalise(t), **x} for r, t, x in messages]
    chars = sum(len(t) for _, t, _ in messages)
    return Prompt("", digest(items), len(messages), attachments, len(items), chars, why)


def _last_user_turn(messages: Sequence[tuple[str, str, dict[str, Any]]]) -> int | None:
    for j in range(len(messages) - 1, -1, -1):
        role, _, extra = messages[j]
        if role == "user" and extra.get("type", "message") == "message":
            return j
    return None


def split_question(text: str, budget: int = QUESTION_BUDGET) -> tuple[str, str]:
    """`(rest, question)`: a long text's final paragraph, or final sentences, within `budget`.

    A text within the budget is all question. Otherwise the question is the
    final paragraph (with the one before if the last is a mere cue such as
    "Answer:"); a final paragraph over the budget gives up its final sentences
    instead, at least one, however long (the cache then checks it fits the
    embedder). The rest is everything before, matched exactly.
    """
    if len(text) <= budget:
        return "", text
    body = text.rstrip()
    starts = [m.end() for m in _PARAGRAPH.finditer(body)]
    start = starts[-1] if starts else 0
    if len(body) - start < MIN_QUESTION and len(starts) > 1 and len(body) - starts[-2] <= budget:
        start = starts[-2]
    if len(body) - start > budget:
        sentences = [start] + [m.end() for m in _SENTENCE.finditer(body, start)]
        sentences = [s for s in sentences if s < len(body)]
        within = [s for s in sentences if len(body) - s <= budget]
        start = within[0] if within else sentences[-1]
    return body[:start], body[start:].strip()


def content_text(content: Any, param: str, blobs: list[Any]) -> str:
    """The text of a message's content; non-text parts are appended to `blobs`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(f"'{param}' must be a string or an array of parts", param=param)
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, Mapping):
            blobs.append(part)  # image_url, input_audio, file, ...: exact match only
        else:
            raise RequestError(f"'{param}' has a part that is not an object", param=param)
    return "\n".join(texts)


def normalise(text: str) -> str:
    """Unicode NFC and whitespace runs as one space; case and punctuation are kept."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def entry_key(partition: str, context: str, question: str) -> str:
    """The exact-tier key of a question in a context and partition, in this key layout."""
    material = f"{KEY_LAYOUT}\x00{partition}\x00{context}\x00{normalise(question)}"
    return hashlib.sha256(_utf8(material)).hexdigest()[:32]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(_utf8(canonical(value))).hexdigest()


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        # JSON may escape a lone surrogate ("\ud800"); it is no text to hash or embed.
        raise RequestError(
            "the request holds a lone UTF-16 surrogate, which is not valid text"
        ) from None
