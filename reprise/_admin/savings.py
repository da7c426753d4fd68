"""What a cached answer saves each time it is served again, recorded when it is stored.

The outbound store (and an import) keeps, in the entry's `meta["savings"]`,
the answer's model and token usage (from the backend's own `usage`) and how
long the backend took; a hit adds those up. Nothing is parsed on the hit path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEY = "savings"


@dataclass(frozen=True, slots=True)
class Savings:
    """One answer's worth: its model, its tokens in and out, the backend's milliseconds."""

    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    backend_ms: float = 0.0

    def as_meta(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "backend_ms": round(self.backend_ms, 3),
        }


def from_response(parsed: Any, backend_ms: float = 0.0) -> Savings:
    """The savings of a parsed answer: chat/completions `usage.prompt_tokens` and
    `completion_tokens`, or the Responses API's `input_tokens` and `output_tokens`."""
    if not isinstance(parsed, Mapping):
        return Savings(backend_ms=backend_ms)
    usage = parsed.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    model = parsed.get("model")
    return Savings(
        model=model if isinstance(model, str) else "",
        input_tokens=_count(usage.get("prompt_tokens", usage.get("input_tokens"))),
        output_tokens=_count(usage.get("completion_tokens", usage.get("output_tokens"))),
        backend_ms=max(0.0, backend_ms),
    )


def from_meta(meta: Mapping[str, Any]) -> Savings:
    """The savings recorded with an entry; zeros for one stored without them."""
    found = meta.get(KEY)
    if not isinstance(found, Mapping):
        return Savings()
    model = found.get("model")
    backend = found.get("backend_ms")
    return Savings(
        model=model if isinstance(model, str) else "",
        input_tokens=_count(found.get("input_tokens")),
        output_tokens=_count(found.get("output_tokens")),
        backend_ms=float(backend) if isinstance(backend, int | float) and backend > 0 else 0.0,
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
