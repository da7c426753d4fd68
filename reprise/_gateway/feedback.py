"""Wrong-answer feedback, scoped to what the caller could have been served.

    POST /reprise/feedback
    {"entry_id": <X-Cache-Entry>, "path": "/my-api/v1/chat/completions",
     "request": {<the request body as sent>}, "correct": false}

An entry id is a digest of values that are not secret (a subscription *id*,
the prompt), so an id alone proves nothing. The gateway therefore computes
the partition of `request` sent to `path` exactly as a lookup would, from the
feedback request's own credentials and headers (the vary-by values), and
marks the entry only if it lives in that partition. Any other entry, another
tenant's or one that doesn't exist, is the same 404: the answer never tells a
caller whether someone else's entry exists.

`mark_wrong` is the one place an entry is marked: the gateway passes the
caller's partition; an operator's tool (the admin API) may pass None to mark
an entry in any partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reprise._cache import PromptLike, SemanticCache
from reprise._gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Feedback:
    """One report: `entry_id` was served for `request` to `path`; `correct` is False."""

    entry_id: str
    path: str
    request: dict[str, Any]
    correct: bool


def parse_feedback(payload: dict[str, Any]) -> Feedback:
    """The report in a feedback body; a 400 naming the field that is missing or wrong."""
    for name, kind in (("entry_id", str), ("path", str), ("request", dict)):
        if not isinstance(payload.get(name), kind):
            what = "a string" if kind is str else "the request body as a JSON object"
            raise GatewayError(
                400, f"feedback needs '{name}': {what}", param=name, code="invalid_value"
            )
    correct = payload.get("correct", False)
    if not isinstance(correct, bool):
        raise GatewayError(400, "'correct' must be true or false", param="correct")
    return Feedback(payload["entry_id"], payload["path"], payload["request"], correct)


def entry_not_found(entry_id: str) -> GatewayError:
    # One message for a missing entry and for another caller's: nothing to tell apart.
    return GatewayError(
        404, f"no cache entry {entry_id[:64]!r} for this request", code="entry_not_found"
    )


async def mark_wrong(
    caches: Iterable[SemanticCache], entry_id: str, prompt: PromptLike, *, partition: str | None
) -> bool:
    """Mark the entry a wrong answer to `prompt` in whichever cache holds it.

    With a `partition`, only an entry in that partition is marked; None (an
    operator's tool) marks it in any. True if an entry was marked.
    """
    for cache in caches:
        if await cache.mark_wrong(entry_id, prompt, partition=partition):
            return True
    return False
