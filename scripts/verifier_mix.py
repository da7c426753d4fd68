"""The verifier's training mix: dev pairs of several sources plus synthetic hard cases.

Imported by `scripts/train_verifier.py`. Every source keeps a held-out part the
verifier never sees, so `reprise bench quality` can measure it on unseen pairs:

- QQP dev, MRPC train, llm_paraphrases_dev: fold 0 of 5 is held out, exactly the
  rows `reprise bench quality --fold 0/5` selects (by `group`, else row index);
- SICK and STS-B: their train files are used, their trial / dev files held out.

Synthetic pairs are generated from the training texts only, with a fixed seed:
hard negatives (one fact changed: a number, a name, a direction, a unit, an
antonym, a negation, a scope word, an ordinal, an operation), as the original
text against the changed one and as a paraphrase of it against the changed one;
surface positives (a polite framing, case and punctuation); and chat-style rewordings
(`scripts/verifier_rewords.py`).
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier_rewords import reword

from reprise._bench.data import Pair, load_pairs
from reprise._verify import lexicon, rules

HELD_OUT_FOLDS = 5
# QQP is by far the largest source and its labels the noisiest: a sample of its
# training pairs keeps it one source among several (and the embedding pass short).
QQP_PAIRS = 10000


@dataclass(frozen=True, slots=True)
class Row:
    text_a: str  # cached
    text_b: str  # looked up
    label: int
    source: str
    key: str  # what folds are made of: a QQP group, else the seed text


def held_out(group: str | None, index: int) -> bool:
    """The rows `reprise bench quality --fold 0/5` evaluates."""
    return zlib.crc32((group or str(index)).encode()) % HELD_OUT_FOLDS == 0


def natural(data: Path) -> list[Row]:
    rows: list[Row] = []

    def add(name: str, pairs: Sequence[Pair], *, hold_out: bool, cap: int = 0) -> None:
        kept = [p for i, p in enumerate(pairs) if not (hold_out and held_out(p.group, i))]
        if cap and len(kept) > cap:
            kept = random.Random(0).sample(kept, cap)
        for p in kept:
            rows.append(Row(p.text_a, p.text_b, p.label, name, p.group or p.text_a))

    add("qqp", load_pairs(data / "qqp_dev.jsonl"), hold_out=True, cap=QQP_PAIRS)
    add("mrpc", load_pairs(data / "mrpc/msr_paraphrase_train.txt"), hold_out=True)
    add("llm", load_pairs(data / "llm_paraphrases_dev.jsonl"), hold_out=True)
    add("sick", load_pairs(data / "sick/SICK_train.txt"), hold_out=False)
    add("stsb", load_pairs(data / "stsb/sts-train.csv"), hold_out=False)
    return rows


# --- one-fact changes: each returns the changed text, or None when it does not apply ---

_WORD = re.compile(r"\b[\w'-]+\b")
_DIGITS = re.compile(r"\b\d+(?:\.\d+)?\b")
_NUMBER_WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "twelve",
    "twenty",
    "hundred",
]
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
]
_AUX = re.compile(r"\b(is|are|was|were|can|could|does|do|did|will|would|should|has|have)\b")
_NEGATED = re.compile(r"\b(not|never|no)\b ?|n't\b")
_DIRECTION = re.compile(r"\bfrom ([\w ]{2,30}?) to ([\w ]{2,30}?)\b(?=[?.!,]|$| in | on | by )")
# "X is bigger than Y" -> "Y is bigger than X". Not "X or Y" / "X vs Y": swapped,
# those mostly ask the same thing, and as negatives they taught the head that.
_COMPARE = re.compile(r"\b(\w+)( (?:is|are|was|were) | )(\w+er|more \w+|less \w+) than (\w+)\b")
_OPERATIONS = [
    ("square", "square root"), ("sum", "product"), ("mean", "median"), ("derivative", "integral"),
    ("sine", "cosine"), ("multiply", "divide"), ("add", "subtract"), ("encode", "decode"),
    ("encrypt", "decrypt"), ("compress", "decompress"), ("import", "export"),
    ("upload", "download"), ("install", "uninstall"), ("buy", "sell"), ("lend", "borrow"),
    ("accept", "decline"), ("push", "pull"), ("read", "write"), ("send", "receive"),
    ("start", "stop"), ("enable", "disable"), ("increase", "decrease"), ("before", "after"),
    ("maximum", "minimum"), ("largest", "smallest"), ("cheapest", "most expensive"),
    ("best", "worst"), ("advantages", "disadvantages"), ("pros", "cons"), ("win", "lose"),
]  # fmt: skip
_SCOPES = [
    " for beginners", " for kids", " in 2010", " vertically", " on Windows", " on a Mac",
    " in Python", " in Java", " without a car", " at night", " in winter", " for free",
    " in the UK", " in India", " for a small business", " on Android", " offline",
    " in detail", " in one sentence", " for dogs", " for women", " after surgery",
]  # fmt: skip
_UNIT_SWAPS = [
    ("km", "miles"), ("miles", "km"), ("kilograms", "pounds"), ("pounds", "kilograms"),
    ("Celsius", "Fahrenheit"), ("Fahrenheit", "Celsius"), ("cups", "grams"), ("grams", "ounces"),
    ("inches", "centimeters"), ("centimeters", "inches"), ("feet", "meters"), ("meters", "feet"),
    ("hours", "minutes"), ("minutes", "seconds"), ("days", "weeks"), ("years", "months"),
    ("dollars", "euros"), ("euros", "pounds"), ("GB", "MB"), ("MB", "KB"), ("liters", "gallons"),
]  # fmt: skip


def _swap_number(text: str, rng: random.Random) -> str | None:
    found = list(_DIGITS.finditer(text))
    if found:
        m = rng.choice(found)
        n = float(m.group())
        new = n + rng.choice([1, 2, 3, 5, 10]) if rng.random() < 0.6 else n * rng.choice([2, 10])
        out = str(int(new)) if float(new).is_integer() and "." not in m.group() else f"{new:g}"
        return text[: m.start()] + out + text[m.end() :]
    words = [w for w in _NUMBER_WORDS if re.search(rf"\b{w}\b", text, re.I)]
    if not words:
        return None
    w = rng.choice(words)
    other = rng.choice([x for x in _NUMBER_WORDS if x != w])
    return re.sub(rf"\b{w}\b", other, text, count=1, flags=re.I)


def _swap_entity(text: str, rng: random.Random, names: Sequence[str]) -> str | None:
    words = [m for m in _WORD.finditer(text) if m.start() > 0 and m.group()[:1].isupper()]
    words = [m for m in words if rules.is_content(m.group().lower())]
    if not words:
        return None
    m = rng.choice(words)
    other = rng.choice(names)
    if other.lower() == m.group().lower():
        return None
    return text[: m.start()] + other + text[m.end() :]


def _swap_direction(text: str, rng: random.Random) -> str | None:
    m = _DIRECTION.search(text)
    if m:
        a, b = m.group(1), m.group(2)
        return text[: m.start()] + f"from {b} to {a}" + text[m.end() :]
    m = _COMPARE.search(text)
    if m and rules.is_content(m.group(1).lower()) and rules.is_content(m.group(4).lower()):
        swapped = f"{m.group(4)}{m.group(2)}{m.group(3)} than {m.group(1)}"
        return text[: m.start()] + swapped + text[m.end() :]
    return None


def _swap_unit(text: str, rng: random.Random) -> str | None:
    present = [(a, b) for a, b in _UNIT_SWAPS if re.search(rf"\b{re.escape(a)}\b", text)]
    if present:
        a, b = rng.choice(present)
        return re.sub(rf"\b{re.escape(a)}\b", b, text, count=1)
    # "how many X in a Y" -> "how many Y in a X"
    m = re.search(r"\b(how many|how much) (\w+) (in|per) (an?|one) (\w+)", text, re.I)
    if m:
        x, y = m.group(2), m.group(5)
        return (
            text[: m.start()] + f"{m.group(1)} {y} {m.group(3)} {m.group(4)} {x}" + text[m.end() :]
        )
    return None


def _antonym(text: str, rng: random.Random) -> str | None:
    options = []
    for a, b in _OPERATIONS:
        for x, y in ((a, b), (b, a)):
            if re.search(rf"\b{re.escape(x)}\b", text, re.I):
                options.append((x, y))
    for group in lexicon.EXCLUSIVE_GROUPS:
        members = [m.split("/") for m in group.split()]  # "kid/child": one member
        for member in members:
            for w in member:
                if re.search(rf"\b{w}\b", text, re.I):
                    other = rng.choice([m for m in members if m is not member])
                    options.append((w, rng.choice(other)))
    if not options:
        return None
    x, y = rng.choice(options)
    return re.sub(rf"\b{re.escape(x)}\b", y, text, count=1, flags=re.I)


def _negate(text: str, rng: random.Random) -> str | None:
    if _NEGATED.search(text):
        return _NEGATED.sub("", text, count=1).replace("  ", " ")
    m = _AUX.search(text)
    if not m:
        return None
    return text[: m.end()] + " not" + text[m.end() :]


def _scope(text: str, rng: random.Random) -> str | None:
    stripped = text.rstrip(" ?.!")
    if len(stripped) < 8:
        return None
    return stripped + rng.choice(_SCOPES) + text[len(stripped) :]


def _ordinal(text: str, rng: random.Random) -> str | None:
    words = [w for w in _ORDINALS if re.search(rf"\b{w}\b", text, re.I)]
    if not words:
        return None
    w = rng.choice(words)
    return re.sub(rf"\b{w}\b", rng.choice([o for o in _ORDINALS if o != w]), text, count=1)


def changes(names: Sequence[str]) -> dict[str, Callable[[str, random.Random], str | None]]:
    return {
        "number": _swap_number,
        "entity": lambda t, r: _swap_entity(t, r, names),
        "direction": _swap_direction,
        "unit": _swap_unit,
        "antonym": _antonym,
        "negation": _negate,
        "scope": _scope,
        "ordinal": _ordinal,
    }


# --- surface positives ---

_FRAMES = (
    "Can you tell me {q}", "Could you explain {q}", "I'd like to know {q}", "Please tell me {q}",
    "Quick question: {q}", "Do you know {q}", "Hey, {q}", "{q} Thanks!",
    "{q} Please answer briefly.",
)  # fmt: skip


def _surface(text: str, rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        q = text[:1].lower() + text[1:]
        return rng.choice(_FRAMES).format(q=q)
    if kind == 1:
        return text.lower().rstrip("?.!")
    if kind == 2:
        return text.rstrip("?.! ") + rng.choice(["?", "??", " ?", "."])
    return text.upper() if len(text) < 40 else text.capitalize()


# Chat-style rewordings generated from the training texts (label 1).
REWORDINGS = 4000


def synthetic(rows: Iterable[Row], seed: int = 0, per_kind: int = 1200) -> list[Row]:
    """Hard negatives (`per_kind` of each change) and surface positives, from training rows."""
    rng = random.Random(seed)
    rows = list(rows)
    positives = [r for r in rows if r.label == 1]
    texts = sorted({t for r in rows for t in (r.text_a, r.text_b) if 12 <= len(t) <= 300})
    names = sorted(
        {
            m.group()
            for t in texts[:: max(1, len(texts) // 20000)]
            for m in _WORD.finditer(t)
            if m.start() > 0 and m.group()[:1].isupper() and len(m.group()) > 2
        }
    )
    out: list[Row] = []
    for kind, change in changes(names).items():
        made = 0
        for i in rng.sample(range(len(positives)), len(positives)):
            if made >= per_kind:
                break
            row = positives[i]
            changed = change(row.text_a, rng)
            if changed is None or changed.strip() == row.text_a.strip():
                continue
            # the original against the change, and a paraphrase of it against the change
            out.append(Row(row.text_a, changed, 0, f"syn-{kind}", row.key))
            out.append(Row(row.text_b, changed, 0, f"syn-{kind}", row.key))
            made += 1
    for i in rng.sample(range(len(texts)), min(len(texts), 3000)):
        t = texts[i]
        out.append(Row(t, _surface(t, rng), 1, "syn-surface", t))
    return out + _rewordings(positives, texts, rng)


def _rewordings(positives: Sequence[Row], texts: Sequence[str], rng: random.Random) -> list[Row]:
    """Chat-style rewordings (`verifier_rewords`): of a text, and of a natural paraphrase's
    one side against its other side (a paraphrase reworded again is still the same request)."""
    out: list[Row] = []
    for i in rng.sample(range(len(texts)), min(len(texts), REWORDINGS)):
        changed = reword(texts[i], rng)
        if changed is not None:
            out.append(Row(texts[i], changed, 1, "syn-reword", texts[i]))
    for i in rng.sample(range(len(positives)), min(len(positives), REWORDINGS // 2)):
        row = positives[i]
        changed = reword(row.text_a, rng, kinds=1)
        if changed is not None:
            out.append(Row(row.text_b, changed, 1, "syn-reword", row.key))
    return out


# Pairs whose texts are longer than this (characters) are left out, but for the
# LLM paraphrases: chat prompts are short, and the token-vector pass over ~20k
# short texts fits the training budget on two shared cores.
MAX_CHARS = 60


def mix(data: Path, seed: int = 0) -> list[Row]:
    rows = natural(data)
    rows += synthetic(rows, seed)
    return [r for r in rows if r.source == "llm" or max(len(r.text_a), len(r.text_b)) <= MAX_CHARS]
