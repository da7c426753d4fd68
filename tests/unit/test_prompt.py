"""A request keyed by its structure: the question matched by meaning, the rest exactly."""

from __future__ import annotations

from typing import Any

import pytest

from reprise._exceptions import RequestError
from reprise._prompt import (
    MIN_QUESTION,
    QUESTION_BUDGET,
    Prompt,
    entry_key,
    from_messages,
    normalise,
    split_question,
)

DOC = "\n\n".join(
    f"Paragraph {i} of the quarterly report says the Oslo office grew by {i} people." * 3
    for i in range(8)
)


def turns(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"role": r, "content": c} for r, c in pairs]


# -- splitting a long last turn


def test_a_text_within_the_budget_is_all_question() -> None:
    text = "What is the capital of France?\n\nAnd of Spain?"
    assert split_question(text) == ("", text)


def test_a_long_text_asks_its_final_paragraph() -> None:
    rest, question = split_question(f"{DOC}\n\nHow many people joined in Oslo?")
    assert question == "How many people joined in Oslo?"
    assert rest.startswith("Paragraph 0")
    assert rest.rstrip().endswith("7 people.")


@pytest.mark.parametrize("cue", ["Answer:", "A:", "Thanks!"])
def test_a_mere_cue_takes_the_paragraph_before_it(cue: str) -> None:
    assert len(cue) < MIN_QUESTION
    _, question = split_question(f"{DOC}\n\nQuestion: how many joined?\n\n{cue}")
    assert question == f"Question: how many joined?\n\n{cue}"


def test_a_final_paragraph_over_the_budget_gives_its_final_sentences() -> None:
    long = " ".join(f"Fact {i} is that the sky was clear on day {i}." for i in range(40))
    rest, question = split_question(f"{long} So, was it ever cloudy?")
    assert question.endswith("So, was it ever cloudy?")
    assert len(question) <= QUESTION_BUDGET
    assert question.startswith("Fact ")  # whole sentences only
    assert rest + question == f"{long} So, was it ever cloudy?"


def test_one_endless_sentence_is_kept_whole_as_the_question() -> None:
    endless = "word " * 300
    rest, question = split_question(endless)
    assert (rest, question) == ("", endless.strip())


# -- question and context of messages


def test_the_same_document_with_another_question_has_the_same_context() -> None:
    a = Prompt.of(f"{DOC}\n\nHow many people joined in Oslo?")
    b = Prompt.of(f"{DOC}\n\nWhat did the report say about Bergen?")
    assert a.context == b.context != ""
    assert a.question != b.question
    assert a.key("p") != b.key("p")


def test_a_different_document_with_the_same_question_has_another_context() -> None:
    changed = DOC.replace("grew by 3", "grew by 30")
    a = Prompt.of(f"{DOC}\n\nHow many people joined in Oslo?")
    b = Prompt.of(f"{changed}\n\nHow many people joined in Oslo?")
    assert a.question == b.question
    assert a.context != b.context


def test_the_same_follow_up_after_different_conversations_differs_in_context() -> None:
    first = turns(("user", "What is water made of?"), ("assistant", "H2O."))
    other = turns(("user", "Tell me about Paris."), ("assistant", "The capital of France."))
    follow = ("user", "Can you give me an example?")
    a = from_messages([*first, *turns(follow)])
    b = from_messages([*other, *turns(follow)])
    alone = Prompt.of("Can you give me an example?")
    assert a.question == b.question == alone.question
    assert len({a.context, b.context, alone.context}) == 3
    assert alone.context == ""


def test_light_normalisation_keeps_case() -> None:
    assert normalise("  Caf\u0065\u0301   au\n\tlait ") == "Caf\u00e9 au lait"
    assert normalise("ABC") != normalise("abc")
    a = from_messages(turns(("system", "Be  brief."), ("user", "Hi")))
    b = from_messages(turns(("system", "Be brief. "), ("user", "Hi")))
    c = from_messages(turns(("system", "be brief."), ("user", "Hi")))
    assert a.context == b.context != c.context


def test_the_exact_key_follows_the_layout_and_every_part() -> None:
    keys = {
        entry_key("p", "", "Hi"),
        entry_key("q", "", "Hi"),
        entry_key("p", "c", "Hi"),
        entry_key("p", "", "Ho"),
    }
    assert len(keys) == 4
    assert entry_key("p", "", "Hi  there") == entry_key("p", "", "Hi there")


def test_messages_after_the_last_user_turn_are_context() -> None:
    a = from_messages(turns(("user", "Write a haiku."), ("assistant", "Autumn")))
    b = from_messages(turns(("user", "Write a haiku."), ("assistant", "Winter")))
    assert a.question == b.question == "Write a haiku."
    assert a.context != b.context


def test_no_user_message_is_exact_only() -> None:
    prompt = from_messages(turns(("system", "Say hello.")))
    assert (prompt.question, prompt.exact_only) == ("", "no user message to match by meaning")
    assert prompt.context


def test_prompt_of_takes_strings_messages_and_prompts() -> None:
    prompt = Prompt.of(turns(("system", "Be brief."), ("user", "Hi")))
    assert Prompt.of(prompt) is prompt
    assert Prompt.of("Hi") == Prompt.of(turns(("user", "Hi")))
    ignored = Prompt.of(turns(("system", "Be brief."), ("user", "Hi")), ignore_system_messages=True)
    assert ignored == Prompt.of("Hi")
    with pytest.raises(RequestError):
        Prompt.of([])


def test_a_lone_surrogate_is_a_request_error() -> None:
    with pytest.raises(RequestError):
        from_messages(turns(("user", "\ud800")))
    with pytest.raises(RequestError):
        from_messages(turns(("system", "\ud800"), ("user", "Hi")))


def test_the_context_says_what_it_holds() -> None:
    history = turns(("user", "What is water made of?"), ("assistant", "H2O."))
    follow = from_messages([*history, *turns(("user", "And ice?"))])
    assert follow.describe_context() == "exact (2 messages, 26 chars)"
    document = Prompt.of(f"{DOC}\n\nHow many people joined in Oslo?")
    rest = len(DOC) + 2
    assert document.describe_context() == f"exact ({rest} chars before the question, {rest} chars)"
    last = turns(("user", f"{DOC}\n\nHow many people joined the Oslo office?"))
    both = from_messages([*history, *last])
    assert both.describe_context() == (
        f"exact (2 messages + {rest} chars before the question, {rest + 26} chars)"
    )
