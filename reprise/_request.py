"""What a request means to the cache: pure functions, no I/O.

The gateway and the library both decide here what text a request is cached
under, which partition it lives in, whether to cache it at all and whether a
backend response is worth keeping. Keeping these decisions free of I/O is what
lets them be tested as plain functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reprise._exceptions import RequestError

Endpoint = Literal["chat", "completions", "responses"]

#: Roles that `ignore_system_messages` leaves out of the cache text.
SYSTEM_ROLES = frozenset({"system", "developer"})

#: Body fields that carry the prompt itself; they go into the cache text.
PROMPT_FIELDS = frozenset({"messages", "prompt", "input", "instructions"})

#: Body fields that cannot change what the model answers. Everything else,
#: including parameters this list has never heard of, partitions the cache:
#: an unknown knob costs a miss, never a wrong answer.
INERT_FIELDS = frozenset(
    {
        "stream",
        "stream_options",  # usage is replayed on request, so it is shape, not content
        "user",
        "metadata",
        "store",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
        "background",
    }
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """The cacheable content of a request.

    `text` is what gets embedded and hashed. `attachments` is a digest of the
    parts that are not text (images, audio, files): they must match exactly,
    so they go into the partition rather than the embedding.
    """

    text: str
    message_count: int
    attachments: str = ""


def extract_prompt(
    body: Mapping[str, Any], endpoint: Endpoint, *, ignore_system_messages: bool = False
) -> Prompt:
    """Return the cache text of a chat, legacy completions or Responses request."""
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(
                "'messages' must be a non-empty array", param="messages", code="invalid_value"
            )
        return _from_messages(messages, "messages", ignore_system_messages)
    if endpoint == "completions":
        return _from_legacy_prompt(body.get("prompt"))
    return _from_responses(body, ignore_system_messages)


def _from_messages(items: Sequence[Any], param: str, ignore_system: bool) -> Prompt:
    lines: list[str] = []
    blobs: list[Any] = []
    for i, message in enumerate(items):
        if not isinstance(message, Mapping):
            raise RequestError(f"'{param}[{i}]' must be an object", param=f"{param}[{i}]")
        role = message.get("role", "user")
        if not isinstance(role, str):
            raise RequestError(f"'{param}[{i}].role' must be a string", param=f"{param}[{i}].role")
        if ignore_system and role in SYSTEM_ROLES:
            continue
        text = _content_text(message.get("content"), f"{param}[{i}].content", blobs)
        # Tool calls and their results decide what comes next as much as text does.
        extra = {
            k: message[k]
            for k in (
                "tool_calls",
                "tool_call_id",
                "name",
                "function_call",
                "call_id",
                "arguments",
                "output",
                "type",
            )
            if message.get(k) is not None
        }
        if extra:
            text = f"{text} {_canonical(extra)}".strip()
        lines.append(f"{role}: {text}")
    if len(lines) == 1 and lines[0].startswith("user: "):
        # A lone user turn embeds as its own words, without a role prefix.
        lines[0] = lines[0][len("user: ") :]
    return Prompt("\n".join(lines), len(lines), _digest(blobs) if blobs else "")


def _content_text(content: Any, param: str, blobs: list[Any]) -> str:
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


def _from_legacy_prompt(prompt: Any) -> Prompt:
    if isinstance(prompt, str):
        return Prompt(prompt, 1)
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return Prompt("\n".join(prompt), len(prompt))
    if isinstance(prompt, list) and prompt:
        # Token arrays: nothing to embed meaningfully, so only an exact repeat may hit.
        return Prompt(_canonical(prompt), len(prompt))
    raise RequestError(
        "'prompt' must be a string or a non-empty array", param="prompt", code="invalid_value"
    )


def _from_responses(body: Mapping[str, Any], ignore_system: bool) -> Prompt:
    raw = body.get("input")
    if isinstance(raw, str):
        items: list[Any] = [{"role": "user", "content": raw}]
    elif isinstance(raw, list) and raw:
        items = list(raw)
    else:
        raise RequestError(
            "'input' must be a string or a non-empty array", param="input", code="invalid_value"
        )
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        items.insert(0, {"role": "developer", "content": instructions})
    return _from_messages(items, "input", ignore_system)


def partition_key(
    body: Mapping[str, Any],
    *,
    endpoint: Endpoint,
    model: str | None = None,
    vary_by: Iterable[str] = (),
    attachments: str = "",
) -> str:
    """Return the partition a request may hit in.

    Two requests share a partition only when their vary-by values, endpoint,
    model and every output-changing parameter are equal. `model` overrides the
    body's (Azure puts the deployment in the path).
    """
    params = {k: v for k, v in body.items() if k not in PROMPT_FIELDS and k not in INERT_FIELDS}
    params["model"] = model if model is not None else body.get("model")
    material = {
        "vary_by": list(vary_by),
        "endpoint": endpoint,
        "params": params,
        "attachments": attachments,
    }
    return _digest(material)[:32]


def over_message_limit(prompt: Prompt, max_message_count: int | None) -> bool:
    """True when the dialog is too long to cache (APIM's `max-message-count`)."""
    return max_message_count is not None and prompt.message_count > max_message_count


def is_cacheable_response(
    status: int, payload: Any, endpoint: Endpoint, *, statuses: Iterable[int] = (200,)
) -> bool:
    """True for a complete, successful backend answer worth serving again."""
    if status not in set(statuses) or not isinstance(payload, Mapping):
        return False
    if endpoint == "responses":
        return payload.get("status", "completed") == "completed" and not payload.get("error")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    # A choice cut by a content filter or with no finish reason is not an answer
    # to serve anyone else; "length" is complete for the max_tokens asked.
    return all(
        isinstance(c, Mapping)
        and c.get("finish_reason") in {"stop", "length", "tool_calls", "function_call"}
        for c in choices
    )


def prompt_key(partition: str, text: str) -> str:
    """The exact-tier key: equal only for the same text in the same partition."""
    return hashlib.sha256(f"{partition}\x00{text}".encode()).hexdigest()[:32]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()
