"""Synthetic rewordings for the verifier's training mix: one request said another way.

Imported by `scripts/verifier_mix.py`. The natural sources are mostly sentence pairs
(QQP questions, SICK and STS-B captions); chat prompts are reworded in ways those
rarely show: a question said as a command, "which" for "what", a contraction, a
digit for a number word, a typo, "how do I" for "how can I", a known abbreviation.
Each function returns the reworded text, or None where it does not apply. They are
generic English transformations applied to the training texts, never to the
evaluation sets (`benchmarks/sets/`), and none changes what is asked.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

_ASK = re.compile(r"^(how) (do|can|should|would) (i|you|we|one) (.+?)[?.!]*$", re.I)
_WHAT_IS = re.compile(r"^(what|who) (is|are) (.+?)[?.!]*$", re.I)
_WHY = re.compile(r"^why (do|does|is|are|did|was|were) (.+?)[?.!]*$", re.I)
_WHAT_NOUN = re.compile(r"^what (?!is\b|are\b|was\b|were\b|do\b|does\b|did\b|can\b|should\b)(\w+)")
_WHICH_NOUN = re.compile(r"^which (\w+)", re.I)

_COMMANDS = ("Explain how to {x}.", "Tell me how to {x}.", "Show me how to {x}.", "how to {x}")
_PERSONS = ("how do I", "how can I", "how should I", "how would I", "how does one", "how to")


def _imperative(text: str, rng: random.Random) -> str | None:
    m = _ASK.match(text.strip())
    if m:
        return rng.choice(_COMMANDS).format(x=m.group(4))
    m = _WHAT_IS.match(text.strip())
    if m:
        x = m.group(3)
        return rng.choice((f"Explain {x}.", f"Tell me {m.group(1).lower()} {x} {m.group(2)}.", x))
    m = _WHY.match(text.strip())
    if m:
        return f"Explain why {m.group(2)}."
    return None


def _person(text: str, rng: random.Random) -> str | None:
    m = _ASK.match(text.strip())
    if not m:
        return None
    start = rng.choice([p for p in _PERSONS if p != " ".join(m.group(1, 2, 3)).lower()])
    return f"{start[:1].upper()}{start[1:]} {m.group(4)}?"


def _which_what(text: str, rng: random.Random) -> str | None:
    t = text.strip()
    if _WHAT_NOUN.match(t.lower()):
        return "Which" + t[4:]
    if _WHICH_NOUN.match(t):
        return "What" + t[5:]
    return None


_CONTRACTIONS = (
    ("do not", "don't"), ("does not", "doesn't"), ("is not", "isn't"), ("are not", "aren't"),
    ("can not", "can't"), ("cannot", "can't"), ("what is", "what's"), ("it is", "it's"),
    ("i am", "I'm"), ("i have", "I've"), ("will not", "won't"), ("should not", "shouldn't"),
    ("how is", "how's"), ("there is", "there's"), ("that is", "that's"), ("you are", "you're"),
)  # fmt: skip


def _swapper(
    pairs: tuple[tuple[str, str], ...], *, short_as_written: bool = False
) -> Callable[[str, random.Random], str | None]:
    """A rewording that swaps one of `pairs` (either way round) present in the text.

    `short_as_written`: the second of a pair is found only in its own case ("US", not
    the "us" of "tell us").
    """

    def swap(text: str, rng: random.Random) -> str | None:
        options = [
            (x, y)
            for long, short in pairs
            for x, y, as_written in ((long, short, False), (short, long, short_as_written))
            if re.search(rf"\b{re.escape(x)}\b", text, 0 if as_written else re.I)
        ]
        if not options:
            return None
        x, y = rng.choice(options)
        return re.sub(rf"\b{re.escape(x)}\b", y, text, count=1, flags=re.I)

    return swap


# Not "one": more often a pronoun ("how does one") than a number.
_NUMERALS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_WORD_OF = {n: w for w, n in _NUMERALS.items()}


def _numeral(text: str, rng: random.Random) -> str | None:
    for word, n in _NUMERALS.items():
        if re.search(rf"\b{word}\b", text, re.I):
            return re.sub(rf"\b{word}\b", str(n), text, count=1, flags=re.I)
    m = re.search(r"(?<!\d[.,:])\b([2-9]|1[0-2])\b(?![.,:]\d)", text)
    if m:
        return text[: m.start()] + _WORD_OF[int(m.group())] + text[m.end() :]
    return None


def _typo(text: str, rng: random.Random) -> str | None:
    words = [m for m in re.finditer(r"[a-z]{6,}", text)]
    if not words:
        return None
    m = rng.choice(words)
    w, i = m.group(), rng.randrange(1, len(m.group()) - 2)
    typo = w[:i] + w[i + 1] + w[i] + w[i + 2 :] if rng.random() < 0.5 else w[:i] + w[i + 1 :]
    return text[: m.start()] + typo + text[m.end() :]


_ABBREVIATIONS = (
    ("JavaScript", "JS"), ("TypeScript", "TS"), ("New York City", "NYC"), ("United States", "US"),
    ("United Kingdom", "UK"), ("machine learning", "ML"), ("artificial intelligence", "AI"),
    ("database", "DB"), ("operating system", "OS"), ("for example", "e.g."),
    ("as soon as possible", "ASAP"), ("frequently asked questions", "FAQ"),
    ("Los Angeles", "LA"), ("kilometers", "km"), ("kilograms", "kg"), ("minutes", "min"),
    ("information", "info"), ("application", "app"), ("documentation", "docs"),
    ("regular expression", "regex"), ("Python 3", "py3"), ("configuration", "config"),
    ("repository", "repo"), ("approximately", "approx."), ("versus", "vs"),
)  # fmt: skip


_SYNONYMS = (
    ("big", "large"), ("small", "little"), ("quick", "fast"), ("buy", "purchase"),
    ("start", "begin"), ("show", "display"), ("help", "assist"), ("make", "create"),
    ("fix", "repair"), ("get rid of", "remove"), ("find out", "determine"), ("use", "utilize"),
    ("car", "vehicle"), ("kids", "children"),
    ("movie", "film"), ("mistake", "error"), ("hard", "difficult"), ("easy", "simple"),
    ("best way", "most effective way"), ("closest", "nearest"), ("pick", "choose"),
    ("shut down", "turn off"), ("near", "close to"), ("answer", "reply"), ("rich", "wealthy"),
)  # fmt: skip


REWORDS: dict[str, Callable[[str, random.Random], str | None]] = {
    "imperative": _imperative,
    "person": _person,
    "which-what": _which_what,
    "contraction": _swapper(_CONTRACTIONS),
    "numeral": _numeral,
    "typo": _typo,
    "abbreviation": _swapper(_ABBREVIATIONS, short_as_written=True),
    "synonym": _swapper(_SYNONYMS),
}


def reword(text: str, rng: random.Random, kinds: int = 2) -> str | None:
    """`text` with up to `kinds` rewordings applied in a random order, or None if none applies."""
    out, applied = text, 0
    for name in rng.sample(sorted(REWORDS), len(REWORDS)):
        if name == "typo" and rng.random() < 0.7:  # it applies to almost any text
            continue
        changed = REWORDS[name](out, rng)
        if changed is not None and changed.strip() != out.strip():
            out, applied = changed, applied + 1
            if applied == kinds:
                break
    return out if applied else None
