"""SSE assembly and replay: pure functions, checked against hand-written OpenAI streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reprise._gateway import sse


def data(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return data({**HEAD, "choices": [choice]})


def test_assembles_a_chat_stream_with_usage() -> None:
    raw = b"".join(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hello"}),
            chunk({"content": ", world"}),
            chunk({}, "stop"),
            data({**HEAD, "choices": [], "usage": {"total_tokens": 3}}),
            b"data: [DONE]\n\n",
        ]
    )
    out = sse.assemble("chat", raw)
    assert out is not None
    assert out["object"] == "chat.completion"
    assert out["id"] == "chatcmpl-1"
    assert out["choices"][0]["message"]["content"] == "Hello, world"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"total_tokens": 3}


def test_assembles_tool_call_fragments_and_several_choices() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get"}}
    raw = b"".join(
        [
            chunk({"role": "assistant", "tool_calls": [call]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
            chunk({"content": "second"}, index=1),
            chunk({}, "tool_calls"),
            chunk({}, "stop", index=1),
            b"data: [DONE]\n\n",
        ]
    )
    out = sse.assemble("chat", raw)
    assert out is not None
    first, second = out["choices"]
    assert first["message"]["content"] is None
    assert first["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}
    ]
    assert second["message"]["content"] == "second"


@pytest.mark.parametrize(
    "raw",
    [
        chunk({"content": "cut"}),  # no finish, no [DONE]
        chunk({"content": "x"}, "stop"),  # finished but [DONE] never came
        chunk({"content": "x"}) + b"data: [DONE]\n\n",  # [DONE] without a finish reason
        data({"error": {"message": "boom"}}) + b"data: [DONE]\n\n",
        b"data: {not json\n\ndata: [DONE]\n\n",
    ],
)
def test_an_incomplete_or_broken_stream_assembles_to_nothing(raw: bytes) -> None:
    assert sse.assemble("chat", raw) is None


def test_crlf_and_split_data_lines_are_understood() -> None:
    raw = chunk({"content": "a"}) + chunk({}, "stop") + b"data: [DONE]\n\n"
    out = sse.assemble("chat", raw.replace(b"\n", b"\r\n"))
    assert out is not None
    assert out["choices"][0]["message"]["content"] == "a"


def completion(content: str = "One two three four five six seven.") -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 5,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 7, "total_tokens": 8},
    }


def test_replay_is_valid_openai_sse_that_assembles_back() -> None:
    payload = completion()
    raw = sse.replay("chat", payload, include_usage=True)
    events = [json.loads(d) for _, d in sse.iter_events(raw) if d != "[DONE]"]
    assert raw.endswith(b"data: [DONE]\n\n")
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len([e for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]) > 1
    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == payload["usage"]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    again = sse.assemble("chat", raw)
    assert again is not None
    assert again["choices"][0]["message"]["content"] == payload["choices"][0]["message"]["content"]


def test_replay_without_usage_has_no_usage_chunk() -> None:
    raw = sse.replay("chat", completion(), include_usage=False)
    events = [json.loads(d) for _, d in sse.iter_events(raw) if d != "[DONE]"]
    assert all(e["choices"] for e in events)
    assert all("usage" not in e for e in events)


def test_pieces_join_back_exactly() -> None:
    text = "  leading space, then\nnewlines and   runs of spaces.  "
    assert "".join(sse.pieces(text)) == text


def test_legacy_completions_round_trip() -> None:
    payload = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "Once upon a time.", "finish_reason": "length"}],
        "usage": None,
    }
    again = sse.assemble("completions", sse.replay("completions", payload, include_usage=False))
    assert again is not None
    assert again["choices"][0]["text"] == "Once upon a time."
    assert again["choices"][0]["finish_reason"] == "length"


def test_responses_round_trip_and_event_order() -> None:
    item = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi there friend", "annotations": []}],
    }
    payload = {"id": "resp_1", "object": "response", "status": "completed", "output": [item]}
    raw = sse.replay("responses", payload, include_usage=False)
    kinds = [event for event, _ in sse.iter_events(raw)]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    numbers = [json.loads(d)["sequence_number"] for _, d in sse.iter_events(raw)]
    assert numbers == sorted(numbers)
    assert sse.assemble("responses", raw) == payload
    assert sse.assemble("responses", raw.split(b"event: response.completed")[0]) is None


def test_azure_streams_open_with_an_empty_filter_chunk() -> None:
    opening = {"id": "", "object": "", "created": 0, "model": "", "choices": []}
    opening["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
    raw = data(opening) + chunk({"content": "ok"}) + chunk({}, "stop") + b"data: [DONE]\n\n"
    out = sse.assemble("chat", raw)
    assert out is not None
    assert (out["id"], out["model"], out["created"]) == ("chatcmpl-1", "m", 7)
