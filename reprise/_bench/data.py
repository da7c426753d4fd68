"""Labelled pairs for the quality benchmark, read from JSONL or converted from SICK / MRPC / STS-B.

Every loader yields `Pair`s: `label` 1 means a cache hit serving `text_a`'s answer
to `text_b` is correct. Boolean fields of a row (`hard_negative`, `number_mismatch`,
`contradiction`, ...) become `flags`, and the benchmark reports each as a slice.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise._exceptions import ConfigError

FORMATS = ("jsonl", "sick", "mrpc", "stsb")

# STS-B scores are 0-5 similarity; the middle band is neither "same request"
# nor clearly different, so it is left out rather than guessed.
STSB_SAME = 4.0
STSB_DIFFERENT = 2.0
# SICK relatedness is 1-5; an entailment this related reads as the same request.
SICK_SAME = 4.0

_NEGATION = re.compile(r"\b(no|not|nobody|none|nothing|never|n't)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Pair:
    text_a: str
    text_b: str
    label: int
    group: str | None = None
    flags: Mapping[str, bool] = field(default_factory=dict)


def load_pairs(path: str | Path, fmt: str | None = None, *, limit: int | None = None) -> list[Pair]:
    """Read pairs from `path`; `fmt` is one of `FORMATS` or guessed from the file name."""
    path = Path(path)
    fmt = fmt or guess_format(path)
    readers = {"jsonl": _jsonl, "sick": _sick, "mrpc": _mrpc, "stsb": _stsb}
    if fmt not in readers:
        raise ConfigError(f"unknown pairs format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise ConfigError(f"pairs file not found: {path}")
    pairs: list[Pair] = []
    for pair in readers[fmt](path):
        pairs.append(pair)
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise ConfigError(f"no pairs in {path}")
    return pairs


def guess_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".jsonl"):
        return "jsonl"
    if "sick" in name:
        return "sick"
    if "msr_paraphrase" in name or "mrpc" in name:
        return "mrpc"
    if name.startswith("sts-") or "stsb" in name:
        return "stsb"
    raise ConfigError(
        f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})"
    )


def pair_from_row(row: Mapping[str, Any], where: str = "row") -> Pair:
    try:
        text_a, text_b, label = str(row["text_a"]), str(row["text_b"]), int(row["label"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: needs text_a, text_b and an integer label ({exc})") from exc
    if label not in (0, 1):
        raise ConfigError(f"{where}: label must be 0 or 1, got {label}")
    group = row.get("group")
    flags = {k: v for k, v in row.items() if isinstance(v, bool)}
    return Pair(text_a, text_b, label, None if group is None else str(group), flags)


def _jsonl(path: Path) -> Iterator[Pair]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield pair_from_row(json.loads(line), f"{path.name}:{n}")


def _tsv(path: Path) -> Iterator[list[str]]:
    # utf-8-sig drops MRPC's byte-order mark; QUOTE_NONE because the sentences
    # contain unbalanced quotes.
    with path.open(encoding="utf-8-sig", newline="") as f:
        yield from csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def _sick(path: Path) -> Iterator[Pair]:
    for row in _tsv(path):
        if len(row) < 5 or not row[0].isdigit():
            continue  # the header, if present
        s1, s2, relatedness, entailment = row[1], row[2], float(row[3]), row[4]
        same = entailment == "ENTAILMENT" and relatedness >= SICK_SAME
        flags = {
            "contradiction": entailment == "CONTRADICTION",
            "negation": bool(_NEGATION.search(s1)) != bool(_NEGATION.search(s2)),
        }
        yield Pair(s1, s2, int(same), None, flags)


def _mrpc(path: Path) -> Iterator[Pair]:
    for row in _tsv(path):
        if len(row) < 5 or row[0] not in ("0", "1"):
            continue  # the header line, if present
        yield Pair(row[3], row[4], int(row[0]))


def _stsb(path: Path) -> Iterator[Pair]:
    for row in _tsv(path):
        if len(row) < 7:
            continue
        score = float(row[4])
        if STSB_DIFFERENT < score < STSB_SAME:
            continue
        yield Pair(row[5], row[6], int(score >= STSB_SAME), None, {"genre_" + row[0]: True})


def duplicate_clusters(pairs: list[Pair]) -> dict[str, int]:
    """Text -> cluster id, where texts labelled duplicates (transitively) share a cluster."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        parent.setdefault(t, t)
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for p in pairs:
        ra, rb = find(p.text_a), find(p.text_b)
        if p.label == 1 and ra != rb:
            parent[ra] = rb
    roots: dict[str, int] = {}
    return {t: roots.setdefault(find(t), len(roots)) for t in list(parent)}


def shared_data_dir() -> Path:
    """The evaluation data: `../shared/data` beside the checkout, or `$REPRISE_DATA`."""
    env = os.environ.get("REPRISE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def qqp_texts_and_duplicates(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Every distinct question of a QQP jsonl file, and its (a, b) duplicate pairs."""
    texts: dict[str, None] = {}
    dups: list[tuple[str, str]] = []
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            a, b = row["text_a"].strip(), row["text_b"].strip()
            texts[a] = texts[b] = None
            if row["label"] == 1 and a != b:
                dups.append((a, b))
    return list(texts), dups
