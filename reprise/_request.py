"""What a request means to the cache: pure functions, no I/O.

The gateway and the library both decide here what a request asks and what
else its answer depends on (`reprise._prompt`), which partition it lives in,
whether to cache it at all and whether a backend response is worth keeping.
Keeping these decisions free of I/O is what lets them be tested as plain
functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from reprise._exceptions import RequestError
from reprise._prompt import Prompt, digest, entry_key, from_messages, from_texts

Endpoint = Literal["chat", "completions", "responses"]

#: Body fields that carry the prompt itself; they go into the question and context.
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


def extract_prompt(
    body: Mapping[str, Any], endpoint: Endpoint, *, ignore_system_messages: bool = False
) -> Prompt:
    """The question and context of a chat, legacy completions or Responses request."""
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(
                "'messages' must be a non-empty array", param="messages", code="invalid_value"
            )
        return from_messages(messages, "messages", ignore_system_messages=ignore_system_messages)
    if endpoint == "completions":
        return _from_legacy_prompt(body.get("prompt"))
    return _from_responses(body, ignore_system_messages)


def _from_legacy_prompt(prompt: Any) -> Prompt:
    if isinstance(prompt, str):
        return from_messages([{"role": "user", "content": prompt}], "prompt")
    if isinstance(prompt, list) and prompt:
        return from_texts(prompt)
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
    return from_messages(items, "input", ignore_system_messages=ignore_system)


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
    return digest(material)[:32]


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


def prompt_key(partition: str, text: str, context: str = "") -> str:
    """The exact-tier key of `text` asked in `context` (default: none) within `partition`."""
    return entry_key(partition, context, text)
