"""Server-sent events, both ways: assemble a streamed answer, replay a cached one.

Pure functions on bytes and dicts. The cache keeps one form of an answer, the
non-streaming JSON (`chat.completion`, `text_completion` or a Responses API
`response`), so a streaming and a non-streaming request share an entry:

- `assemble` turns the SSE a backend streamed into that JSON, or None when the
  stream did not finish (no `[DONE]`, a choice without `finish_reason`, an
  error event): a cut stream is never cached.
- `replay` turns the JSON back into the SSE a backend would have sent: a role
  delta, content chunks, tool calls, the finish reason, a usage chunk when the
  client asked with `stream_options.include_usage`, then `data: [DONE]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from reprise._request import Endpoint

DONE = "[DONE]"
_WORDS_PER_CHUNK = 4
_TOKEN = re.compile(r"\S+\s*|\s+")


def iter_events(raw: bytes) -> Iterator[tuple[str, str]]:
    """Yield `(event, data)` for each event in an SSE text; `event` is "" if unnamed."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        event, data = "", []
        for line in block.split("\n"):
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif line.startswith("event:"):
                event = line[6:].strip()
        if data:
            yield event, "\n".join(data)


def assemble(endpoint: Endpoint, raw: bytes) -> dict[str, Any] | None:
    """The non-streaming JSON of a complete stream, or None if it is incomplete."""
    try:
        if endpoint == "responses":
            return _assemble_response(raw)
        return _assemble_choices(raw, chat=endpoint == "chat")
    except (ValueError, TypeError, AttributeError, KeyError):
        return None  # malformed chunks: not something to serve again


def _assemble_response(raw: bytes) -> dict[str, Any] | None:
    for _, data in iter_events(raw):
        event = json.loads(data)
        if event.get("type") == "response.completed":
            response = event.get("response")
            return response if isinstance(response, dict) else None
    return None


def _assemble_choices(raw: bytes, *, chat: bool) -> dict[str, Any] | None:
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    done = False
    for _, data in iter_events(raw):
        if data.strip() == DONE:
            done = True
            continue
        chunk = json.loads(data)
        if not isinstance(chunk, dict) or chunk.get("error"):
            return None
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if key not in head and chunk.get(key):  # Azure opens with model "", created 0
                head[key] = chunk[key]
        usage = chunk.get("usage") or usage
        for c in chunk.get("choices") or ():
            state = choices.setdefault(c.get("index", 0), _new_choice())
            (_merge_delta if chat else _merge_text)(state, c)
    if not done or not choices or any(s["finish_reason"] is None for s in choices.values()):
        return None
    build = _chat_choice if chat else _text_choice
    out: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [build(i, choices[i]) for i in sorted(choices)],
        "usage": usage,
    }
    for key in ("system_fingerprint", "service_tier"):
        if key in head:
            out[key] = head[key]
    return out


def _new_choice() -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [],
        "refusal": [],
        "tool_calls": {},
        "function_call": None,
        "finish_reason": None,
        "logprobs": None,
    }


def _merge_delta(state: dict[str, Any], choice: Mapping[str, Any]) -> None:
    delta = choice.get("delta") or {}
    state["role"] = delta.get("role") or state["role"]
    if delta.get("content"):
        state["content"].append(delta["content"])
    if delta.get("refusal"):
        state["refusal"].append(delta["refusal"])
    for call in delta.get("tool_calls") or ():
        slot = state["tool_calls"].setdefault(
            call.get("index", 0), {"id": "", "type": "function", "name": [], "arguments": []}
        )
        slot["id"] = call.get("id") or slot["id"]
        slot["type"] = call.get("type") or slot["type"]
        function = call.get("function") or {}
        slot["name"].append(function.get("name") or "")
        slot["arguments"].append(function.get("arguments") or "")
    if delta.get("function_call"):
        fc = state["function_call"] or {"name": "", "arguments": ""}
        fc["name"] += delta["function_call"].get("name") or ""
        fc["arguments"] += delta["function_call"].get("arguments") or ""
        state["function_call"] = fc
    _merge_common(state, choice)


def _merge_text(state: dict[str, Any], choice: Mapping[str, Any]) -> None:
    if choice.get("text"):
        state["content"].append(choice["text"])
    _merge_common(state, choice)


def _merge_common(state: dict[str, Any], choice: Mapping[str, Any]) -> None:
    if choice.get("finish_reason"):
        state["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, Mapping):
        merged = state["logprobs"] or {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged.setdefault(key, value)
        state["logprobs"] = merged


def _chat_choice(index: int, state: dict[str, Any]) -> dict[str, Any]:
    tool_calls = [
        {
            "id": slot["id"],
            "type": slot["type"],
            "function": {"name": "".join(slot["name"]), "arguments": "".join(slot["arguments"])},
        }
        for _, slot in sorted(state["tool_calls"].items())
    ]
    content = "".join(state["content"])
    message: dict[str, Any] = {
        "role": state["role"],
        "content": content if content or not (tool_calls or state["function_call"]) else None,
        "refusal": "".join(state["refusal"]) or None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if state["function_call"]:
        message["function_call"] = state["function_call"]
    return {
        "index": index,
        "message": message,
        "logprobs": state["logprobs"],
        "finish_reason": state["finish_reason"],
    }


def _text_choice(index: int, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "text": "".join(state["content"]),
        "logprobs": state["logprobs"],
        "finish_reason": state["finish_reason"],
    }


# --- replay ----------------------------------------------------------------------------


def replay(endpoint: Endpoint, payload: Mapping[str, Any], *, include_usage: bool) -> bytes:
    """The SSE body a backend would have streamed for this non-streaming `payload`."""
    if endpoint == "responses":
        return b"".join(_replay_response(payload))
    replay_choices = _replay_chat if endpoint == "chat" else _replay_text
    events = replay_choices(payload, include_usage)
    return b"".join([*events, b"data: [DONE]\n\n"])


def pieces(text: str) -> list[str]:
    """Split text into a few words per chunk; the pieces join back to exactly `text`."""
    tokens = _TOKEN.findall(text)
    n = _WORDS_PER_CHUNK
    return ["".join(tokens[i : i + n]) for i in range(0, len(tokens), n)]


def _data(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def _replay_chat(payload: Mapping[str, Any], include_usage: bool) -> list[bytes]:
    head: dict[str, Any] = {
        "id": payload.get("id", ""),
        "object": "chat.completion.chunk",
        "created": payload.get("created", 0),
        "model": payload.get("model", ""),
    }
    if payload.get("system_fingerprint") is not None:
        head["system_fingerprint"] = payload["system_fingerprint"]
    if include_usage:
        head["usage"] = None  # as OpenAI does: every chunk carries it, null until the last

    def chunk(index: int, delta: Mapping[str, Any], finish: Any = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _data({**head, "choices": [choice]})

    out: list[bytes] = []
    for choice in payload.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        out.append(chunk(index, {"role": message.get("role", "assistant"), "content": ""}))
        out.extend(chunk(index, {"content": p}) for p in pieces(message.get("content") or ""))
        if message.get("refusal"):
            out.append(chunk(index, {"refusal": message["refusal"]}))
        for i, call in enumerate(message.get("tool_calls") or ()):
            out.append(chunk(index, {"tool_calls": [{"index": i, **call}]}))
        if message.get("function_call"):
            out.append(chunk(index, {"function_call": message["function_call"]}))
        out.append(chunk(index, {}, choice.get("finish_reason") or "stop"))
    if include_usage:
        out.append(_data({**head, "choices": [], "usage": payload.get("usage")}))
    return out


def _replay_text(payload: Mapping[str, Any], include_usage: bool) -> list[bytes]:
    head: dict[str, Any] = {
        "id": payload.get("id", ""),
        "object": "text_completion",
        "created": payload.get("created", 0),
        "model": payload.get("model", ""),
    }

    def chunk(index: int, text: str, finish: Any = None) -> bytes:
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
        return _data({**head, "choices": [choice]})

    out: list[bytes] = []
    for choice in payload.get("choices") or ():
        index = choice.get("index", 0)
        out.extend(chunk(index, p) for p in pieces(choice.get("text") or ""))
        out.append(chunk(index, "", choice.get("finish_reason") or "stop"))
    if include_usage:
        out.append(_data({**head, "choices": [], "usage": payload.get("usage")}))
    return out


def _replay_response(payload: Mapping[str, Any]) -> Iterator[bytes]:
    """The Responses API event sequence for a completed `response` object."""
    seq = iter(range(1 << 30))

    def event(kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": next(seq), **fields}
        return f"event: {kind}\n".encode() + _data(body)

    pending = {**payload, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for out_index, item in enumerate(payload.get("output") or ()):
        if item.get("type") != "message":
            yield event("response.output_item.added", output_index=out_index, item=item)
            yield event("response.output_item.done", output_index=out_index, item=item)
            continue
        yield event(
            "response.output_item.added",
            output_index=out_index,
            item={**item, "status": "in_progress", "content": []},
        )
        for c_index, part in enumerate(item.get("content") or ()):
            where = {"item_id": item.get("id", ""), "output_index": out_index}
            where["content_index"] = c_index
            text = part.get("text", "") if part.get("type") == "output_text" else ""
            empty = {**part, "text": ""} if "text" in part else part
            yield event("response.content_part.added", **where, part=empty)
            for p in pieces(text):
                yield event("response.output_text.delta", **where, delta=p, logprobs=[])
            if part.get("type") == "output_text":
                yield event("response.output_text.done", **where, text=text, logprobs=[])
            yield event("response.content_part.done", **where, part=part)
        yield event("response.output_item.done", output_index=out_index, item=item)
    yield event("response.completed", response=payload)
