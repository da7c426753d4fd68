"""Whether two prompts say the same words: case, punctuation and framing aside.

`same_words` is the verifier's cheapest "serve": a prompt that only changes case,
punctuation, a polite framing ("Can you tell me ...") or names the kind of thing
it asks for says what the cached one said.
"""

from __future__ import annotations

import re

from reprise._verify.lexicon import ENTITY_KINDS, NUMBER_WORDS, UNITS
from reprise._verify.rules import memo_short

# Framings that ask for nothing: "Can you tell me X?" asks X.
_FRAMES = tuple(
    re.compile(f)
    for f in (
        r"^(?:please )?(?:can|could|would|will) you (?:please )?"
        r"(?:tell me|let me know|explain|show me|give me)\b ?",
        r"^(?:please )?tell me\b ?",
        r"^i (?:want|would like|need|wanted) to know\b ?",
        r"^do you know\b ?",
        r"\bplease\b ?",
        r"^(?:what|who|which) (?:is|are) ",
    )
)


_CONTRACTIONS = tuple(
    (re.compile(p), full)
    for p, full in (
        (r"\b(what|who|where|when|how|it|that|there|here)'s\b", r"\1 is"),
        (r"\bcan't\b", "cannot"),
        (r"\bwon't\b", "will not"),
        (r"n't\b", " not"),
        (r"'re\b", " are"),
        (r"'m\b", " am"),
        (r"'ll\b", " will"),
        (r"'ve\b", " have"),
    )
)


_SURFACE_TOKEN = re.compile(r"\w+|[=<>+*/%&|^~!]+|(?<=\w)-(?=\w)|(?<=\w)\.(?=\w)|[()\[\]{}]")


@memo_short
def surface(text: str) -> str:
    """The words of `text` without case, punctuation or a polite framing."""
    text = text.lower().replace("’", "'")
    for short, full in _CONTRACTIONS:
        text = short.sub(full, text)
    # Operators stay: in code, "x = y" and "x == y" are different requests.
    words = [w for w in _SURFACE_TOKEN.findall(text) if w not in ("the", "a", "an")]
    # "10 cm" and "ten centimeters" are the same words here
    out = " ".join(UNITS.get(w) or _canonical_number(w) for w in words)
    for frame in _FRAMES:
        out = frame.sub("", out).strip()
    return out


def _canonical_number(word: str) -> str:
    n = NUMBER_WORDS.get(word)
    return word if n is None else str(n)


def same_words(a: str, b: str) -> bool:
    """The two prompts say the same words: only case, punctuation or framing differ,
    or one names the kind of thing it asks for and the other doesn't."""
    sa, sb = surface(a), surface(b)
    return sa == sb or _kind_named(sa, sb) or _kind_named(sb, sa)


# "Which city is the capital of France?" asks what "What is the capital of France?"
# asks: the rest already fixes the kind of thing named. Attributes ("What colour is
# the sky?") change the question and are not kinds; nor is a kind the other prompt
# names differently ("Which country is...").
_KIND_FRAME = re.compile(rf"^(?:what|which) (?:{'|'.join(sorted(ENTITY_KINDS))}) (?:is|are) ")


def _kind_named(named: str, plain: str) -> bool:
    """`named` is `plain` asked as "which <kind> is ..." (both are `surface` forms)."""
    match = _KIND_FRAME.match(named)
    return match is not None and named[match.end() :] == plain
