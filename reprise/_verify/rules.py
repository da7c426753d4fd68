"""Checks on what must match exactly between two prompts, as pure functions.

Each check looks at the words one prompt has and the other lacks, so that a
rewording (case, punctuation, "Can you tell me ...", word order) changes
nothing, while a substitution of a number, a unit, a negation, an antonym, a
named entity, a language or the direction of a relation is a *conflict*.

`conflicts(a, b)` returns the names of the checks that fail; the verifier
vetoes a candidate on any of them and feeds them to its learned combiner.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import TypeVar

from reprise._verify.code import operands
from reprise._verify.lexicon import (
    AMBIGUOUS_LANGS,
    BOUNDARY,
    DIRECTION_MARKERS,
    GROUP_OF,
    INFINITIVE_TRIGGERS,
    LANG_ALIASES,
    LANGUAGES,
    MAGNITUDES,
    NEG_PREFIXES,
    NEGATIONS,
    NUMBER_WORDS,
    ORDINALS,
    PROGRAMMING,
    SCALES,
    STOPWORDS,
    UNITS,
    VAGUE,
)

_T = TypeVar("_T")
_MEMO_CHARS = 2_000


def memo_short(fn: Callable[[str], _T]) -> Callable[[str], _T]:
    """`fn`, remembering its answers for the last 4,096 texts of up to `_MEMO_CHARS`.

    A longer text is worked out each time: 4,096 remembered texts of any length (a
    request body may be 16 MB) would bound the entries but not the memory.
    """
    memo = lru_cache(maxsize=4096)(fn)

    @wraps(fn)
    def call(text: str) -> _T:
        return memo(text) if len(text) <= _MEMO_CHARS else fn(text)

    return call


_TOKEN = re.compile(
    # Letters of any script: "北京的天气" and "上海的天气" are different words too.
    r"[$€£¥₹]|\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|°[cf]|[^\W\d_][\w+#'’\-]*[\w+#]|"
    r"[^\W\d_]\+\+|[^\W\d_]#|[^\W\d_]|%|->|→|[,;:?!.()]",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Tokens:
    """One prompt, tokenised for the checks: lower-cased words, and which were capitalised."""

    words: tuple[str, ...]
    capitalised: frozenset[str]
    langs_as_written: frozenset[str]
    code: frozenset[str]


@memo_short
def tokenize(text: str) -> Tokens:
    raw = _TOKEN.findall(text.replace("’", "'"))
    words: list[str] = []
    capitalised: set[str] = set()
    written: set[str] = set()
    for i, tok in enumerate(raw):
        low = tok.lower()
        parts = _split_contraction(low)
        words.extend(parts)
        if tok[:1].isupper() and ((i > 0 and raw[i - 1] not in ".?!") or _odd_case(tok)):
            capitalised.add(parts[0])  # "Newton's" names "newton", as `words` says it
        if low in AMBIGUOUS_LANGS and ((tok[:1].isupper() and low != "go") or tok == "Go"):
            written.add(low)
    return Tokens(tuple(words), frozenset(capitalised), frozenset(written), operands(text))


def _split_contraction(word: str) -> list[str]:
    if word.endswith("n't"):
        stem = {"can": "can", "won": "will", "shan": "shall"}.get(word[:-3], word[:-3])
        return [stem, "n't"]
    for suffix in ("'s", "'re", "'ve", "'ll", "'d", "'m"):
        if word.endswith(suffix):
            return [word[: -len(suffix)]]
    if word == "cannot":
        return ["can", "not"]
    return [word]


def _odd_case(tok: str) -> bool:
    # "iPhone", "GPT", "macOS": capital letters after the first mark a name
    # even at the start of a sentence.
    return (any(c.isupper() for c in tok[1:]) and not tok.isupper()) or (
        tok.isupper() and len(tok) > 1
    )


_NUMERAL = re.compile(r"(\d+(?:\.\d+)?)(?:st|nd|rd|th)?")


# Memoised by word (the checks ask for every word's number several times per
# candidate; with `re`'s pattern cache that was a fifth of the verifier's time on the
# event loop), only for words short enough that 4,096 of them stay small.
@memo_short
def _number(word: str) -> float | None:
    word = word.replace(",", "")
    m = _NUMERAL.fullmatch(word)
    if m:
        return float(m.group(1))
    if word in NUMBER_WORDS:
        return float(NUMBER_WORDS[word])
    if word in ORDINALS:
        return float(ORDINALS[word])
    return None


def _numbers_at(words: Sequence[str]) -> list[tuple[int, int, float]]:
    """(first, last position, value) of each number said, skipping vague magnitudes.

    A scale after a number is part of it: "15k", "15 thousand" and "15,000" are one number.
    """
    out: list[tuple[int, int, float]] = []
    i = 0
    while i < len(words):
        w, n = words[i], _number(words[i])
        if n is None or (w in MAGNITUDES and i > 0 and words[i - 1] in VAGUE):
            i += 1
            continue
        last = i
        while last + 1 < len(words) and words[last + 1] in SCALES and words[last] not in SCALES:
            n *= SCALES[words[last + 1]]
            last += 1
        out.append((i, last, n))
        i = last + 1
    return out


def numbers(tokens: Tokens) -> Counter[float]:
    return Counter(n for _, _, n in _numbers_at(tokens.words))


def units(tokens: Tokens) -> frozenset[str]:
    return frozenset(UNITS[w] for w in tokens.words if w in UNITS)


def is_content(word: str) -> bool:
    return (
        word not in STOPWORDS
        and word not in NEGATIONS
        and word not in BOUNDARY
        and word not in DIRECTION_MARKERS
        and (len(word) > 1 or word.isdigit() or word in "$€£¥₹%")
    )


def content_words(tokens: Tokens) -> frozenset[str]:
    return frozenset(w for w in tokens.words if is_content(w))


# --- the checks: each takes both tokenised prompts and says whether they conflict ---


def number_conflict(a: Tokens, b: Tokens) -> bool:
    """A number one side has and the other lacks ("17 times 23" vs "18 times 23")."""
    return numbers(a) != numbers(b)


def unit_conflict(a: Tokens, b: Tokens) -> bool:
    """Different units on both sides ("5 km" vs "5 miles", "$" vs "€"), or a number
    bound to another unit ("5 miles in km" vs "5 km in miles")."""
    ua, ub = units(a), units(b)
    if bool(ua - ub) and bool(ub - ua):
        return True
    return numbers(a) == numbers(b) and quantities(a) != quantities(b)


def quantities(tokens: Tokens) -> Counter[tuple[float, str]]:
    """Each number with the unit next to it ("5 km", "$5", "5 %")."""
    out: Counter[tuple[float, str]] = Counter()
    words = tokens.words
    for i, last, n in _numbers_at(words):
        after = UNITS.get(words[last + 1], "") if last + 1 < len(words) else ""
        before = UNITS.get(words[i - 1], "") if i > 0 and words[i - 1] in "$€£¥₹" else ""
        out[(n, after or before)] += 1
    return out


def negation_conflict(a: Tokens, b: Tokens) -> bool:
    """One side is negated and the other is not ("can I" vs "can't I")."""
    neg_a = _negations(a.words) + _prefix_negated(a, b)
    neg_b = _negations(b.words) + _prefix_negated(b, a)
    return (neg_a % 2) != (neg_b % 2) or (neg_a > 0) != (neg_b > 0)


def _negations(words: Sequence[str]) -> int:
    """How many negations `words` say, for their parity.

    A negated form said again ("non-hashable" twice) negates once, and an answer's
    "No, ..." negates nothing: "No, it doesn't exist" says what "It does not exist"
    says. A "No." with nothing after it is the whole answer, and counts.
    """
    plain = sum(1 for i, w in enumerate(words) if w in NEGATIONS and not _answer_no(words, i))
    formed = {w for w in words if _negating(w) and w not in NEGATIONS}
    return plain + len(formed)


def _answer_no(words: Sequence[str], i: int) -> bool:
    return (
        words[i] == "no"
        and (i == 0 or words[i - 1] in _SENTENCE_END)
        and i + 2 < len(words)
        and words[i + 1] in (",", ".", "!", ";", ":")
    )


_SENTENCE_END = frozenset((".", "!", "?", ":"))


def _prefix_negated(a: Tokens, b: Tokens) -> int:
    """Words of `a` that negate a word `b` says negated ("impossible" / "not possible")."""
    said = _negated_words(b.words)
    return sum(1 for w in a.words if not _negating(w) for stem in said if _negated_form(stem, w))


def _negating(word: str) -> bool:
    # "dairy-free" and "gluten free" say "without"; "non-streaming" says "not streaming"
    return word in NEGATIONS or word == "free" or word.endswith("-free") or word.startswith("non-")


def antonym_conflict(a: Tokens, b: Tokens) -> bool:
    """A word swapped for an exclusive alternative (on/off, vegan/vegetarian, legal/illegal)."""
    # Multisets: "turn on wifi on Windows" vs "turn off wifi on Windows".
    only_a = Counter(a.words) - Counter(b.words)
    only_b = Counter(b.words) - Counter(a.words)
    if not only_a or not only_b:
        return False
    return any(
        (_exclusive(x, y) or _negated_form(x, y)) and not _said_negated(x, y, a, b)
        for x in only_a
        for y in only_b
    )


def _exclusive(x: str, y: str) -> bool:
    """Different members of one exclusive group ("vegan", "vegetarian")."""
    of_x = GROUP_OF.get(x, ())
    return any(g == h and m != n for g, m in of_x for h, n in GROUP_OF.get(y, ()))


def _said_negated(x: str, y: str, a: Tokens, b: Tokens) -> bool:
    """ "not legal" on one side, "illegal" on the other: the same request, said two ways
    (the negation check still counts the "not" against the prefix)."""
    return x in _negated_words(a.words) or y in _negated_words(b.words)


def _negated_words(words: Sequence[str]) -> set[str]:
    """The words right after a negation ("possible" in "not possible")."""
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w in NEGATIONS}


def _negated_form(x: str, y: str) -> bool:
    short, long = (x, y) if len(x) < len(y) else (y, x)
    if len(short) < 4:
        return False
    return any(long == p + short for p in NEG_PREFIXES)


def language_conflict(a: Tokens, b: Tokens) -> bool:
    """Different target or programming languages on the two sides."""
    for vocab in (LANGUAGES, PROGRAMMING):
        la, lb = _langs(a, vocab), _langs(b, vocab)
        if la and lb and la != lb and (la - lb) and (lb - la):
            return True
    return False


def _langs(tokens: Tokens, vocab: frozenset[str]) -> frozenset[str]:
    return frozenset(
        LANG_ALIASES.get(w, w)
        for w in tokens.words
        if w in vocab and (w not in AMBIGUOUS_LANGS or w in tokens.langs_as_written)
    )


def entity_conflict(a: Tokens, b: Tokens) -> bool:
    """A name on each side that the other side does not mention ("Paris" vs "Rome")."""
    names_a = _names(a, b)
    names_b = _names(b, a)
    return bool(names_a) and bool(names_b)


def _names(a: Tokens, b: Tokens) -> set[str]:
    """Names `a` has that `b` doesn't say, in full, as an acronym or by another name."""
    if not a.capitalised:
        return set()
    said = {LANG_ALIASES.get(w, w) for w in b.words}
    unsaid = {w for w in a.capitalised if is_content(w) and LANG_ALIASES.get(w, w) not in said}
    if not unsaid:  # the usual case: spare building every acronym of b
        return unsaid
    initials = _initials(b.words)
    return {w for w in unsaid if w not in initials and not _misspelt(w, b.words)}


def _misspelt(name: str, words: Sequence[str]) -> bool:
    """`words` has `name` with one typo ("Stalnigrad", "Afghanisan"): a long name only,
    as short ones one letter apart are often other names ("Iran", "Iraq")."""
    return len(name) >= 6 and any(_one_edit(name, w) for w in words if abs(len(w) - len(name)) < 2)


def _one_edit(x: str, y: str) -> bool:
    """One insertion, deletion, substitution or swap of neighbours turns `x` into `y`."""
    if x == y:
        return False
    i = 0
    while i < min(len(x), len(y)) and x[i] == y[i]:
        i += 1
    if len(x) == len(y):
        swapped = i + 1 < len(x) and x[i] == y[i + 1] and x[i + 1] == y[i]
        return x[i + 1 :] == y[i + 1 :] or (swapped and x[i + 2 :] == y[i + 2 :])
    longer, shorter = (x, y) if len(x) > len(y) else (y, x)
    return longer[i + 1 :] == shorter[i:]


def _initials(words: Sequence[str]) -> set[str]:
    """The acronyms runs of 2-5 words spell ("nyc": "New York City"), which name the same."""
    out = set()
    for i in range(len(words)):
        for n in range(2, 6):
            run = words[i : i + n]
            if len(run) == n and all(w[:1].isalpha() for w in run):
                out.add("".join(w[0] for w in run))
    return out


def direction_conflict(a: Tokens, b: Tokens) -> bool:
    """The arguments of a directed relation swap sides ("from X to Y" vs "from Y to X").

    Both ends must move: a word going from source to target alone is more
    often an infinitive read as a direction ("safe to drink tap water").
    """
    src_a, dst_a = roles(a.words)
    src_b, dst_b = roles(b.words)
    return bool(src_a & dst_b) and bool(dst_a & src_b)


def roles(words: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Content words at the source and at the target end of directional markers."""
    sources: set[str] = set()
    targets: set[str] = set()
    for i, w in enumerate(words):
        if w == "from":
            sources |= _phrase(words, i, +1)
        elif w in DIRECTION_MARKERS and _directional(words, i):
            sources |= _phrase(words, i, -1)
            targets |= _phrase(words, i, +1)
    both = sources & targets
    return frozenset(sources - both), frozenset(targets - both)


def _directional(words: Sequence[str], i: int) -> bool:
    if words[i] == "than" or words[i] in ("->", "→"):
        return True
    prev = words[i - 1] if i > 0 else ""
    return is_content(prev) and prev not in INFINITIVE_TRIGGERS


def _phrase(words: Sequence[str], i: int, step: int, limit: int = 3) -> set[str]:
    out: set[str] = set()
    j = i + step
    while 0 <= j < len(words) and len(out) < limit:
        w = words[j]
        if w in BOUNDARY or w in DIRECTION_MARKERS:
            break
        if is_content(w):
            out.add(w)
        j += step
    return out


def code_conflict(a: Tokens, b: Tokens) -> bool:
    """Both prompts quote code, and not the same (`reprise._verify.code`)."""
    return bool(a.code) and bool(b.code) and a.code != b.code


# The checks the learned score also reads as features (its weights were fitted on these)...
CHECKS = {
    "number": number_conflict,
    "unit": unit_conflict,
    "negation": negation_conflict,
    "antonym": antonym_conflict,
    "language": language_conflict,
    "entity": entity_conflict,
    "direction": direction_conflict,
}
# ...and all that veto: quoted code is an exact operand, as numbers are, and the
# training mix has too little of it to weigh.
VETOES = {**CHECKS, "code": code_conflict}


def conflicts(a: str, b: str, checks: Iterable[str] = VETOES) -> list[str]:
    """The names of the checks on which prompts `a` and `b` disagree (empty: none)."""
    ta, tb = tokenize(a), tokenize(b)
    return [name for name in checks if VETOES[name](ta, tb)]
