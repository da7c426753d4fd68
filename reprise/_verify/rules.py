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

_T = TypeVar("_T")
_MEMO_CHARS = 2_000


def _memo_short(fn: Callable[[str], _T]) -> Callable[[str], _T]:
    """`fn`, remembering its answers for the last 4,096 texts of up to `_MEMO_CHARS`.

    A longer text is worked out each time: 4,096 remembered texts of any length (a
    request body may be 16 MB) would bound the entries but not the memory.
    """
    memo = lru_cache(maxsize=4096)(fn)

    @wraps(fn)
    def call(text: str) -> _T:
        return memo(text) if len(text) <= _MEMO_CHARS else fn(text)

    return call


def _words_of(text: str) -> list[str]:
    return text.split()


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry no content of their own: they never make a difference.
STOPWORDS = _set(
    """a an the is are was were be been being am do does did doing done have has had having
    i me my mine we us our you your yours he him his she her it its they them their this that
    these those what which who whom whose when where why how there here of in on at by for with
    about as into onto to from up out over under again then once so than too very can could
    would should will shall may might must just also and or but if because while until though
    although any some such own same other each few more most s t ll ve re d m please tell
    know let like get got give make want need way ways best good really actually possible
    one thing things someone something anything anyone kind sort type types please hi hello
    help explain show describe mean means use used using go going come comes take"""
)
# "no", "not", "never" are excluded above on purpose: they are the negation check's.
NEGATIONS = _set("not no never none nobody nothing neither nor cannot without nowhere n't unable")

_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        _words_of(
            "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen"
            " fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
     "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9,
     "dozen": 12, "twice": 2}  # fmt: skip
_ORDINALS = {
    w: i + 1
    for i, w in enumerate(
        ["first", "_", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
    )
}

# Unit spellings mapped to one canonical name: "km" and "kilometres" agree.
_UNITS: dict[str, str] = {}
for _canon, _spellings in {
    "km": "km kms kilometer kilometers kilometre kilometres",
    "mile": "mi mile miles",
    "m": "meter meters metre metres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "inch": "inch inches",
    "foot": "ft foot feet",
    "yard": "yd yard yards",
    "kg": "kg kgs kilogram kilograms kilo kilos",
    "g": "gram grams",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "ton": "ton tons tonne tonnes",
    "celsius": "celsius centigrade °c",
    "fahrenheit": "fahrenheit °f",
    "kelvin": "kelvin",
    "l": "liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "gallon": "gallon gallons gal",
    "cup": "cup cups",
    "tbsp": "tbsp tablespoon tablespoons",
    "tsp": "tsp teaspoon teaspoons",
    "second": "sec secs second seconds",
    "minute": "min mins minute minutes",
    "hour": "hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "yr yrs year years",
    "kb": "kb kilobyte kilobytes",
    "mb": "mb megabyte megabytes",
    "gb": "gb gigabyte gigabytes",
    "tb": "tb terabyte terabytes",
    "bit": "bit bits",
    "byte": "byte bytes",
    "mph": "mph",
    "kph": "kph kmh km/h",
    "usd": "$ usd dollar dollars buck bucks",
    "eur": "€ eur euro euros",
    "gbp": "£ gbp sterling",
    "jpy": "¥ yen jpy",
    "inr": "₹ inr rupee rupees rs",
    "percent": "% percent percentage",
    "degree": "° degree degrees",
    "watt": "w watt watts",
    "kw": "kw kilowatt kilowatts",
    "volt": "v volt volts",
    "calorie": "calorie calories kcal cal",
    "hz": "hz hertz",
    "ghz": "ghz gigahertz",
    "pixel": "px pixel pixels",
    "word": "word words",
    "sentence": "sentence sentences",
    "paragraph": "paragraph paragraphs",
    "page": "page pages",
    "line": "line lines",
    "item": "item items",
    "step": "step steps",
}.items():
    for _s in _spellings.split():
        _UNITS[_s] = _canon

# Groups of mutually exclusive words: swapping one member for another changes
# the request. Two-word groups are antonyms; larger ones are scopes/categories.
_EXCLUSIVE_GROUPS: tuple[str, ...] = (
    # antonyms
    "on off", "enable disable", "enabled disabled", "ascending descending", "asc desc",
    "increase decrease", "increase reduce", "raise lower", "raise reduce", "rise fall",
    "increase lower", "boost reduce", "gain lose", "increasing decreasing", "before after",
    "max min", "maximum minimum", "largest smallest", "biggest smallest", "highest lowest",
    "shortest longest", "tallest shortest", "fastest slowest", "newest oldest",
    "latest earliest", "hottest coldest", "heaviest lightest", "strongest weakest",
    "richest poorest", "best worst",
    "best worst", "higher lower", "more less", "above below", "add remove", "push pull",
    "buy sell", "upload download", "import export", "start stop", "open close",
    "open closed", "opened closed", "opening closing", "good bad", "better worse",
    "true false", "positive negative", "left right", "up down", "win lose", "hot cold",
    "fast slow", "faster slower", "cheap expensive",
    "cheapest expensive", "advantages disadvantages",
    "pros cons", "love hate", "male female", "men women", "man woman", "boy girl", "boys girls",
    "young old", "younger older", "youngest oldest", "first last", "north south", "east west",
    "uppercase lowercase", "upper lower", "input output", "private public", "inner outer",
    "synchronous asynchronous", "sync async", "encode decode", "encoding decoding",
    "compress decompress", "encrypt decrypt", "encryption decryption", "serialize deserialize",
    "install uninstall", "lock unlock", "allow deny", "allow block", "accept reject",
    "horizontal vertical", "horizontally vertically", "absolute relative", "easy hard",
    "easy difficult", "light dark", "day night", "early late", "rich poor", "legal illegal",
    "long short", "longer shorter", "big small", "bigger smaller", "large small",
    "larger smaller", "tall short", "taller shorter", "heavy light", "heavier lighter",
    "strong weak", "stronger weaker", "grow shrink", "over under", "include exclude",
    "inclusive exclusive", "with without", "success failure", "pass fail", "happy sad",
    "love hate", "like dislike", "agree disagree", "safe unsafe", "safe dangerous",
    "healthy unhealthy", "gain lose", "gain loss", "profit loss", "import export",
    "internal external", "front back", "top bottom", "begin end", "beginning end",
    "start end", "connect disconnect", "attach detach", "mount unmount", "zip unzip",
    "show hide", "visible hidden", "read write", "send receive", "sent received",
    "client server", "frontend backend", "debit credit", "deposit withdraw", "borrow lend",
    "import require", "minimize maximize", "overestimate underestimate", "expand collapse",
    "inhale exhale", "arrival departure", "arrive depart", "wet dry", "full empty",
    "mean median", "sum product",
    # scopes and categories
    "vegetarian vegan pescatarian keto paleo carnivore",
    "hourly daily weekly monthly yearly/annually quarterly",
    "beginner/beginners intermediate advanced expert/experts",
    "all some none",
    "always sometimes never often rarely usually",
    "monday tuesday wednesday thursday friday saturday sunday",
    "january february march april june july august september october november december",
    "spring summer autumn/fall winter",
    "morning afternoon evening night tonight",
    "breakfast lunch dinner brunch",
    "today tomorrow yesterday",
    "plus minus times divided multiplied",
    "add subtract multiply divide",
    "addition subtraction multiplication division",
    "sum average/mean median mode",
    "brief/short detailed/long",
    "summary detailed",
    "singular plural",
    "past present future",
    "red orange yellow green blue purple violet pink brown black white grey/gray",
    "windows mac/macos linux ubuntu ios android",
    "iphone android",
    "chrome firefox safari edge opera",
    "aws azure gcp",
    "mysql postgres/postgresql sqlite mongodb redis oracle cassandra",
    "npm yarn pip conda cargo maven gradle",
    "docker podman",
    "react angular vue svelte",
    "cat/cats dog/dogs",
    "boil bake fry grill roast steam",
    "formal informal casual",
    "kid/kids/child/children adult/adults teen/teens/teenager/teenagers expert/experts"
    " professional/professionals",
    "wife husband",
    "mother/mom father/dad",
    "son daughter",
    "brother sister",
    "bachelor/bachelors master/masters phd",
    "mba ms mtech btech",
    "buy rent lease",
)  # fmt: skip
# Word -> (group, member) it belongs to; "a/b" spells one member two ways (kid/child).
_GROUP_OF: dict[str, tuple[tuple[int, int], ...]] = {}
for _i, _g in enumerate(_EXCLUSIVE_GROUPS):
    for _m, _member in enumerate(_g.split()):
        for _w in _member.split("/"):
            _GROUP_OF[_w] = (*_GROUP_OF.get(_w, ()), (_i, _m))

_LANGUAGES = _set(
    """english french spanish german italian portuguese dutch russian chinese mandarin
    cantonese japanese korean arabic hindi bengali urdu punjabi tamil telugu marathi gujarati
    kannada malayalam turkish persian farsi hebrew greek latin polish ukrainian czech swedish
    norwegian danish finnish hungarian romanian thai vietnamese indonesian malay swahili
    tagalog filipino"""
)
_PROGRAMMING = _set(
    """python java javascript typescript js ts c++ cpp c# csharp golang rust ruby php swift
    kotlin scala perl haskell matlab sql bash powershell lua dart elixir erlang clojure
    fortran cobol julia groovy objective-c assembly html css r c go"""
)
# One language, two names: "JS" and "JavaScript" agree.
_LANG_ALIASES = {
    "js": "javascript", "ts": "typescript", "golang": "go", "cpp": "c++", "csharp": "c#",
    "farsi": "persian", "mandarin": "chinese", "filipino": "tagalog",
}  # fmt: skip
# "c", "r" and "go" are languages only when written as such ("in C", "Go's").
_AMBIGUOUS_LANGS = frozenset({"c", "r", "go"})

# Prefixes that negate a word: "possible"/"impossible", "install"/"uninstall".
_NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "de", "non", "non-", "anti", "a")
# "to" after these is an infinitive, not a direction ("how to", "want to").
_INFINITIVE_TRIGGERS = _set(
    """how want wants wanted need needs needed have has had going able used way ways best
    easiest fastest tips try trying tried like wish hope plan learn start begin continue
    decide decided order ought supposed due about expected allowed possible hard easy
    reason reasons time place steps something anything nothing where what"""
)
_DIRECTION_MARKERS = frozenset({"to", "into", "from", "than", "towards", "toward", "->", "→"})
_BOUNDARY = frozenset({",", ";", ":", "?", "!", ".", "(", ")", "and", "or", "but", "vs"})

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


@_memo_short
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
        if low in _AMBIGUOUS_LANGS and ((tok[:1].isupper() and low != "go") or tok == "Go"):
            written.add(low)
    return Tokens(tuple(words), frozenset(capitalised), frozenset(written))


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


# "several thousand" and "thousands" say no number; "two thousand" and "a thousand" do.
_MAGNITUDES = frozenset(("hundred", "thousand", "million", "billion"))
_VAGUE = frozenset(("several", "many", "few", "some", "multiple", "countless", "of"))
_NUMERAL = re.compile(r"(\d+(?:\.\d+)?)(?:st|nd|rd|th)?")


# Memoised by word (the checks ask for every word's number several times per
# candidate; with `re`'s pattern cache that was a fifth of the verifier's time on the
# event loop), only for words short enough that 4,096 of them stay small.
@_memo_short
def _number(word: str) -> float | None:
    word = word.replace(",", "")
    m = _NUMERAL.fullmatch(word)
    if m:
        return float(m.group(1))
    if word in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[word])
    if word in _ORDINALS:
        return float(_ORDINALS[word])
    return None


def _numbers_at(words: Sequence[str]) -> list[tuple[int, float]]:
    """(position, value) of each number said, skipping vague magnitudes."""
    return [
        (i, n)
        for i, w in enumerate(words)
        if (n := _number(w)) is not None
        and not (w in _MAGNITUDES and i > 0 and words[i - 1] in _VAGUE)
    ]


def numbers(tokens: Tokens) -> Counter[float]:
    return Counter(n for _, n in _numbers_at(tokens.words))


def units(tokens: Tokens) -> frozenset[str]:
    return frozenset(_UNITS[w] for w in tokens.words if w in _UNITS)


def is_content(word: str) -> bool:
    return (
        word not in STOPWORDS
        and word not in NEGATIONS
        and word not in _BOUNDARY
        and word not in _DIRECTION_MARKERS
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
    for i, n in _numbers_at(words):
        after = _UNITS.get(words[i + 1], "") if i + 1 < len(words) else ""
        before = _UNITS.get(words[i - 1], "") if i > 0 and words[i - 1] in "$€£¥₹" else ""
        out[(n, after or before)] += 1
    return out


def negation_conflict(a: Tokens, b: Tokens) -> bool:
    """One side is negated and the other is not ("can I" vs "can't I")."""
    neg_a = sum(_negating(w) for w in a.words) + _prefix_negated(a, b)
    neg_b = sum(_negating(w) for w in b.words) + _prefix_negated(b, a)
    return (neg_a % 2) != (neg_b % 2) or (neg_a > 0) != (neg_b > 0)


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
    of_x = _GROUP_OF.get(x, ())
    return any(g == h and m != n for g, m in of_x for h, n in _GROUP_OF.get(y, ()))


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
    return any(long == p + short for p in _NEG_PREFIXES)


def language_conflict(a: Tokens, b: Tokens) -> bool:
    """Different target or programming languages on the two sides."""
    for vocab in (_LANGUAGES, _PROGRAMMING):
        la, lb = _langs(a, vocab), _langs(b, vocab)
        if la and lb and la != lb and (la - lb) and (lb - la):
            return True
    return False


def _langs(tokens: Tokens, vocab: frozenset[str]) -> frozenset[str]:
    return frozenset(
        _LANG_ALIASES.get(w, w)
        for w in tokens.words
        if w in vocab and (w not in _AMBIGUOUS_LANGS or w in tokens.langs_as_written)
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
    said = {_LANG_ALIASES.get(w, w) for w in b.words}
    unsaid = {w for w in a.capitalised if is_content(w) and _LANG_ALIASES.get(w, w) not in said}
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
        elif w in _DIRECTION_MARKERS and _directional(words, i):
            sources |= _phrase(words, i, -1)
            targets |= _phrase(words, i, +1)
    both = sources & targets
    return frozenset(sources - both), frozenset(targets - both)


def _directional(words: Sequence[str], i: int) -> bool:
    if words[i] == "than" or words[i] in ("->", "→"):
        return True
    prev = words[i - 1] if i > 0 else ""
    return is_content(prev) and prev not in _INFINITIVE_TRIGGERS


def _phrase(words: Sequence[str], i: int, step: int, limit: int = 3) -> set[str]:
    out: set[str] = set()
    j = i + step
    while 0 <= j < len(words) and len(out) < limit:
        w = words[j]
        if w in _BOUNDARY or w in _DIRECTION_MARKERS:
            break
        if is_content(w):
            out.add(w)
        j += step
    return out


_ENTITY_KINDS = _set(
    "city cities town country countries nation state states province capital continent "
    "island islands river rivers lake lakes mountain mountains ocean sea planet planets "
    "language company companies person team element"
)

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


@_memo_short
def surface(text: str) -> str:
    """The words of `text` without case, punctuation or a polite framing."""
    text = text.lower().replace("’", "'")
    for short, full in _CONTRACTIONS:
        text = short.sub(full, text)
    # Operators stay: in code, "x = y" and "x == y" are different requests.
    words = [w for w in _SURFACE_TOKEN.findall(text) if w not in ("the", "a", "an")]
    # "10 cm" and "ten centimeters" are the same words here
    out = " ".join(_UNITS.get(w) or _canonical_number(w) for w in words)
    for frame in _FRAMES:
        out = frame.sub("", out).strip()
    return out


def _canonical_number(word: str) -> str:
    n = _NUMBER_WORDS.get(word)
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
_KIND_FRAME = re.compile(rf"^(?:what|which) (?:{'|'.join(sorted(_ENTITY_KINDS))}) (?:is|are) ")


def _kind_named(named: str, plain: str) -> bool:
    """`named` is `plain` asked as "which <kind> is ..." (both are `surface` forms)."""
    match = _KIND_FRAME.match(named)
    return match is not None and named[match.end() :] == plain


CHECKS = {
    "number": number_conflict,
    "unit": unit_conflict,
    "negation": negation_conflict,
    "antonym": antonym_conflict,
    "language": language_conflict,
    "entity": entity_conflict,
    "direction": direction_conflict,
}


def conflicts(a: str, b: str, checks: Iterable[str] = CHECKS) -> list[str]:
    """The names of the checks on which prompts `a` and `b` disagree (empty: none)."""
    ta, tb = tokenize(a), tokenize(b)
    return [name for name in checks if CHECKS[name](ta, tb)]
