"""The request rules as plain functions: cache text, partitions, limits, cacheability."""

from __future__ import annotations

from typing import Any

import pytest

from reprise._exceptions import RequestError
from reprise._request import (
    extract_prompt,
    is_cacheable_response,
    over_message_limit,
    partition_key,
    prompt_key,
)


def chat(*messages: tuple[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": r, "content": c} for r, c in messages],
        **params,
    }


def test_lone_user_message_is_the_question_with_no_context() -> None:
    prompt = extract_prompt(chat(("user", "Hi there")), "chat")
    assert (prompt.question, prompt.context, prompt.exact_only) == ("Hi there", "", "")


def test_a_dialog_asks_its_last_user_turn_and_keys_the_rest_exactly() -> None:
    body = chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"))
    prompt = extract_prompt(body, "chat")
    assert prompt.question == "Bye"
    assert prompt.context
    assert (prompt.message_count, prompt.context_messages) == (4, 3)
    assert prompt.describe_context() == "exact (3 messages, 17 chars)"


def test_ignore_system_messages_drops_system_and_developer() -> None:
    body = chat(("system", "Be brief."), ("developer", "No emoji."), ("user", "Hi"))
    prompt = extract_prompt(body, "chat", ignore_system_messages=True)
    assert (prompt.question, prompt.context) == ("Hi", "")
    assert prompt.message_count == 1
    assert extract_prompt(body, "chat").message_count == 3


def test_system_prompt_changes_the_context_unless_ignored() -> None:
    a = chat(("system", "Answer in French."), ("user", "Hi"))
    b = chat(("system", "Answer in German."), ("user", "Hi"))
    assert extract_prompt(a, "chat").question == extract_prompt(b, "chat").question
    assert extract_prompt(a, "chat").context != extract_prompt(b, "chat").context
    assert (
        extract_prompt(a, "chat", ignore_system_messages=True).context
        == extract_prompt(b, "chat", ignore_system_messages=True).context
        == ""
    )


def test_multipart_content_uses_text_parts_and_digests_the_rest() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}
    other = {"type": "image_url", "image_url": {"url": "https://x/dog.png"}}
    body = chat(("user", [{"type": "text", "text": "What is this?"}, image]))
    prompt = extract_prompt(body, "chat")
    assert prompt.question == "What is this?"
    assert prompt.attachments
    body2 = chat(("user", [{"type": "text", "text": "What is this?"}, other]))
    assert extract_prompt(body2, "chat").attachments != prompt.attachments


def test_tool_calls_are_part_of_the_context() -> None:
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    a = {"messages": [{"role": "user", "content": "Weather?"}, call]}
    call2 = {
        **call,
        "tool_calls": [
            {
                "id": "1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
            }
        ],
    }
    b = {"messages": [{"role": "user", "content": "Weather?"}, call2]}
    pa, pb = extract_prompt(a, "chat"), extract_prompt(b, "chat")
    assert pa.question == pb.question == "Weather?"
    assert pa.context != pb.context


def test_serialization_is_deterministic() -> None:
    body = chat(("user", [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]))
    assert extract_prompt(body, "chat") == extract_prompt(body, "chat")


def test_legacy_prompt_string_and_list() -> None:
    assert extract_prompt({"prompt": "Say hi"}, "completions").question == "Say hi"
    assert extract_prompt({"prompt": ["Say hi"]}, "completions").question == "Say hi"
    several = extract_prompt({"prompt": ["a", "b"]}, "completions")
    assert several.message_count == 2
    assert (several.question, several.exact_only) == ("", "several prompts")
    tokens = extract_prompt({"prompt": [[1, 2], [3]]}, "completions")
    assert tokens.exact_only == "token arrays"
    assert tokens.context != extract_prompt({"prompt": [[1, 2], [4]]}, "completions").context


def test_responses_input_string_items_and_instructions() -> None:
    assert extract_prompt({"input": "Hello"}, "responses").question == "Hello"
    body = {
        "instructions": "Be terse.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
    }
    prompt = extract_prompt(body, "responses")
    assert prompt.question == "Hello"
    assert prompt.context
    ignored = extract_prompt(body, "responses", ignore_system_messages=True)
    assert (ignored.question, ignored.context) == ("Hello", "")


def test_a_responses_tool_output_is_context_not_the_question() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "18C"},
        ]
    }
    prompt = extract_prompt(body, "responses")
    assert prompt.question == "Weather in Paris?"
    other = {"input": [*body["input"][:2], {**body["input"][2], "output": "25C"}]}
    assert extract_prompt(other, "responses").context != prompt.context


@pytest.mark.parametrize(
    ("body", "endpoint", "param"),
    [
        ({"model": "m"}, "chat", "messages"),
        ({"messages": []}, "chat", "messages"),
        ({"messages": ["hi"]}, "chat", "messages[0]"),
        ({"messages": [{"role": "user", "content": 3}]}, "chat", "messages[0].content"),
        ({"prompt": 3}, "completions", "prompt"),
        ({"input": {}}, "responses", "input"),
    ],
)
def test_malformed_requests_raise_request_error(body: Any, endpoint: Any, param: str) -> None:
    with pytest.raises(RequestError) as info:
        extract_prompt(body, endpoint)
    assert info.value.status == 400
    assert info.value.param == param


def test_max_message_count() -> None:
    prompt = extract_prompt(chat(("user", "a"), ("assistant", "b"), ("user", "c")), "chat")
    assert not over_message_limit(prompt, None)
    assert not over_message_limit(prompt, 3)
    assert over_message_limit(prompt, 2)


BASE = chat(("user", "Hi"))


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o-mini"},
        {"temperature": 0.2},
        {"top_p": 0.5},
        {"max_tokens": 5},
        {"max_completion_tokens": 5},
        {"n": 2},
        {"stop": ["\n"]},
        {"seed": 7},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tool_choice": "required"},
        {"response_format": {"type": "json_object"}},
        {"logprobs": True},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
        {"logit_bias": {"50256": -100}},
        {"some_future_parameter": 1},
    ],
)
def test_output_changing_parameters_change_the_partition(change: dict[str, Any]) -> None:
    assert partition_key({**BASE, **change}, endpoint="chat") != partition_key(
        BASE, endpoint="chat"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"stream": True},
        {"stream_options": {"include_usage": True}},
        {"user": "u1"},
        {"messages": [{"role": "user", "content": "Something else"}]},
    ],
)
def test_inert_fields_and_the_prompt_keep_the_partition(change: dict[str, Any]) -> None:
    assert partition_key({**BASE, **change}, endpoint="chat") == partition_key(
        BASE, endpoint="chat"
    )


def test_vary_by_endpoint_model_override_and_attachments_partition() -> None:
    key = partition_key(BASE, endpoint="chat")
    assert partition_key(BASE, endpoint="chat", vary_by=["team-a"]) != key
    assert partition_key(BASE, endpoint="chat", vary_by=["team-a"]) != partition_key(
        BASE, endpoint="chat", vary_by=["team-b"]
    )
    assert partition_key(BASE, endpoint="completions") != key
    assert partition_key(BASE, endpoint="chat", model="my-deployment") != key
    assert partition_key(BASE, endpoint="chat", attachments="abc") != key
    # Parameter order never matters.
    assert partition_key({"temperature": 0, "top_p": 1}, endpoint="chat") == partition_key(
        {"top_p": 1, "temperature": 0}, endpoint="chat"
    )


def test_prompt_key_separates_partitions_and_contexts() -> None:
    assert prompt_key("a", "x") != prompt_key("b", "x")
    assert prompt_key("a", "x") == prompt_key("a", "x")
    assert prompt_key("a", "x", "c1") != prompt_key("a", "x", "c2")
    assert prompt_key("a", "x") == extract_prompt({"prompt": "x"}, "completions").key("a")


def completion(*finish: str | None) -> dict[str, Any]:
    return {
        "choices": [
            {"index": i, "finish_reason": f, "message": {"content": "x"}}
            for i, f in enumerate(finish)
        ]
    }


def test_only_complete_successful_responses_are_cacheable() -> None:
    assert is_cacheable_response(200, completion("stop"), "chat")
    assert is_cacheable_response(200, completion("stop", "length"), "chat")
    assert is_cacheable_response(200, completion("tool_calls"), "chat")
    assert not is_cacheable_response(500, completion("stop"), "chat")
    assert not is_cacheable_response(201, completion("stop"), "chat")
    assert is_cacheable_response(201, completion("stop"), "chat", statuses=(200, 201))
    assert not is_cacheable_response(200, completion("content_filter"), "chat")
    assert not is_cacheable_response(200, completion(None), "chat")
    assert not is_cacheable_response(200, {"choices": []}, "chat")
    assert not is_cacheable_response(200, "not json", "chat")
    assert is_cacheable_response(200, {"status": "completed", "output": []}, "responses")
    assert not is_cacheable_response(200, {"status": "incomplete"}, "responses")
