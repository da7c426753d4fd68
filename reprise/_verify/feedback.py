"""Per-entry thresholds learned from feedback (the vCache idea, in its simplest safe form).

A hit marked wrong tells us that this entry's decision boundary lies below the
distance of that prompt. The entry keeps, in `meta`, the nearest distance at
which it was wrong; from then on it only answers prompts clearly nearer than
that, whatever the global threshold. Marks only ever tighten: one wrong answer
costs more than one missed hit, and a later "correct" mark cannot prove that
nearer prompts are safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

META_KEY = "max_distance"
# How far below a wrong distance the entry's limit goes: distances of one
# prompt vary by ~1e-3 between embedder builds, and a rewording of the wrong
# prompt sits a little nearer or farther.
MARGIN = 0.25


def entry_limit(meta: Mapping[str, Any]) -> float | None:
    """The entry's own maximum distance, if feedback has set one."""
    value = meta.get(META_KEY)
    return float(value) if isinstance(value, int | float) else None


def within_limit(meta: Mapping[str, Any], distance: float) -> bool:
    limit = entry_limit(meta)
    return limit is None or distance <= limit


def tightened(meta: Mapping[str, Any], wrong_distance: float) -> dict[str, Any]:
    """`meta` with the entry's limit moved below a prompt it answered wrongly."""
    limit = max(0.0, wrong_distance * (1.0 - MARGIN))
    current = entry_limit(meta)
    new = limit if current is None else min(current, limit)
    return {**meta, META_KEY: round(new, 6)}
