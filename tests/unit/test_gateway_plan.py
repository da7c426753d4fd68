"""The lookup plan: one pure function decides what a lookup policy does with a request."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reprise._cache import SemanticCache
from reprise._exceptions import RequestError
from reprise._gateway.caches import CacheSlot
from reprise._gateway.plan import LookupPlan, plan_lookup
from reprise._gateway.policies import SemanticCacheLookup

POLICY = SemanticCacheLookup(score_threshold=0.2, embeddings_backend_id="emb")


async def _never() -> SemanticCache:
    raise AssertionError("a plan never opens a cache")


SLOT = CacheSlot("emb", _never)


def body(*turns: tuple[str, str], **params: Any) -> dict[str, Any]:
    messages = [{"role": role, "content": content} for role, content in turns]
    return {"model": "gpt-4o", "messages": messages, **params}


def plan(
    payload: dict[str, Any],
    policy: SemanticCacheLookup = POLICY,
    *,
    vary_by: tuple[str, ...] = (),
    directives: tuple[str, ...] = (),
) -> LookupPlan:
    return plan_lookup(
        payload, "chat", policy, SLOT, vary_by=vary_by, model=None, directives=directives
    )


def test_a_plain_request_is_looked_up_and_may_be_stored() -> None:
    made = plan(body(("user", "Hi")))
    assert (made.bypass, made.may_store, made.prompt.question) == ("", True, "Hi")
    assert made.slot is SLOT
    assert made.trace_fields()["context"] == "none"


def test_the_plan_is_frozen() -> None:
    made = plan(body(("user", "Hi")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.may_store = False  # type: ignore[misc]
    assert made.failed().may_store is False
    assert made.may_store is True


def test_the_exact_key_is_the_same_for_a_repeat_and_differs_by_conversation() -> None:
    water = [("user", "What is water made of?"), ("assistant", "H2O.")]
    paris = [("user", "Tell me about Paris."), ("assistant", "A city.")]
    follow = ("user", "Can you give me an example?")
    first = plan(body(*water, follow))
    assert first.exact_key == plan(body(*water, follow, stream=True)).exact_key
    assert first.exact_key != plan(body(*paris, follow)).exact_key
    assert first.exact_key != plan(body(follow)).exact_key
    assert first.exact_key != plan(body(*water, follow), vary_by=("tenant-b",)).exact_key
    assert first.trace_fields()["context"] == "exact (2 messages, 26 chars)"


def test_max_message_count_bypasses_and_never_stores() -> None:
    limited = dataclasses.replace(POLICY, max_message_count=2)
    dialog = body(("user", "a"), ("assistant", "b"), ("user", "c"))
    made = plan(dialog, limited)
    assert (made.bypass, made.may_store) == ("3 messages > max-message-count", False)
    assert plan(body(("user", "c")), limited).bypass == ""


def test_max_message_count_does_not_count_ignored_system_messages() -> None:
    limited = dataclasses.replace(POLICY, max_message_count=1, ignore_system_messages=True)
    made = plan(body(("system", "Be brief."), ("user", "Hi")), limited)
    assert made.bypass == ""
    assert made.prompt.context == ""


def test_ignore_system_messages_leaves_the_system_prompt_out_of_the_key() -> None:
    ignoring = dataclasses.replace(POLICY, ignore_system_messages=True)
    a = body(("system", "You are a support bot."), ("user", "Hi"))
    b = body(("system", "You are a pirate."), ("user", "Hi"))
    assert plan(a).exact_key != plan(b).exact_key
    assert plan(a, ignoring).exact_key == plan(b, ignoring).exact_key


def test_cache_control_no_cache_bypasses_and_no_store_only_stops_the_store() -> None:
    no_cache = plan(body(("user", "Hi")), directives=("no-cache",))
    assert (no_cache.bypass, no_cache.may_store) == ("Cache-Control: no-cache", True)
    no_store = plan(body(("user", "Hi")), directives=("no-store",))
    assert (no_store.bypass, no_store.may_store) == ("", False)


def test_a_request_with_nothing_to_embed_is_traced_as_exact_only() -> None:
    made = plan_lookup(
        {"model": "m", "prompt": [[1, 2, 3]]}, "completions", POLICY, SLOT,
        vary_by=(), model=None, directives=(),
    )  # fmt: skip
    assert made.trace_fields()["exact_only"] == "token arrays"
    assert made.bypass == ""


def test_an_unreadable_body_is_a_request_error() -> None:
    with pytest.raises(RequestError):
        plan({"model": "m", "messages": []})
