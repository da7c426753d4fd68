"""The attribute tables of the policy elements, and the converters they name.

Each policy element has a table: XML attribute name -> `_Attr` (the dataclass
field it fills, its converter, whether it is required). `_attrs` reads a node
by its table into keyword arguments for the policy's dataclass. `_check_attrs`
refuses an attribute the table lacks, naming the nearest allowed one, or the
reason Reprise does not honour it (`_REFUSED`). Apart from `policies` so that
the walk over the sections reads without the value rules; a new attribute is a
row here plus a field on its dataclass there.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reprise._exceptions import ConfigError
from reprise._gateway.expressions import Expression, compile_expression
from reprise._gateway.policy_xml import _Context, _Node


@dataclass(frozen=True, slots=True)
class _Attr:
    field: str | None  # None: checked, then dropped (nothing in Reprise reads it)
    convert: Callable[[str], Any]
    required: bool = False


def _positive_int(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _distance(value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be a cosine distance between 0 and 1 (lower is stricter)")
    return number


def _precision(value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        number = -1.0
    if not 0.0 < number < 1.0:
        raise ValueError("must be a precision between 0 and 1 (higher is stricter), e.g. 0.9")
    return number


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError('must be "true" or "false"')
    return lowered == "true"


def _name(value: str) -> str:
    if not value.strip() or value.strip().startswith("@"):
        raise ValueError("must be a plain non-empty name")
    return value.strip()


def _auth(value: str) -> str:
    # Reprise has no managed identity; "system-assigned" is accepted so APIM
    # documents paste unchanged, and the backend's own headers authenticate,
    # with or without it: so the value is checked and not kept.
    if value.strip() != "system-assigned":
        raise ValueError('must be "system-assigned" (set credentials in the backend\'s headers)')
    return value.strip()


def _no_expression(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def checked(value: str) -> Any:
        if "@(" in value or value.strip().startswith("@{"):
            raise ValueError(
                f"must be a constant; expressions such as {value.strip()!r} are not supported here"
            )
        return convert(value)

    return checked


def _expression(value: str) -> Expression:
    return compile_expression(value)


_LOOKUP: dict[str, _Attr] = {
    "score-threshold": _Attr("score_threshold", _no_expression(_distance), required=True),
    "embeddings-backend-id": _Attr("embeddings_backend_id", _name, required=True),
    "embeddings-backend-auth": _Attr(None, _auth),
    "ignore-system-messages": _Attr("ignore_system_messages", _no_expression(_bool)),
    "max-message-count": _Attr("max_message_count", _no_expression(_positive_int)),
    "target-precision": _Attr("target_precision", _no_expression(_precision)),
}
_STORE: dict[str, _Attr] = {
    "duration": _Attr("duration", _no_expression(_positive_int), required=True),
    "cache-response": _Attr("cache_response", _no_expression(_bool)),
}
_RATE: dict[str, _Attr] = {
    "calls": _Attr("calls", _no_expression(_positive_int), required=True),
    "renewal-period": _Attr("renewal_period", _no_expression(_positive_int), required=True),
    "retry-after-header-name": _Attr("retry_after_header_name", _name),
}
_RATE_BY_KEY: dict[str, _Attr] = {
    **_RATE,
    "counter-key": _Attr("counter_key", _expression, required=True),
    "increment-count": _Attr("increment_count", _no_expression(_positive_int)),
}


def _stream_through(value: str) -> bool:
    if _bool(value):
        raise ValueError('must be "false": Reprise streams responses through as they arrive')
    return False


_SET_BACKEND: dict[str, _Attr] = {
    "backend-id": _Attr("backend_id", _name, required=True),
}
_FORWARD: dict[str, _Attr] = {
    "timeout": _Attr("timeout", _no_expression(_positive_int)),
    "buffer-response": _Attr("buffer_response", _no_expression(_stream_through)),
}

# Attributes APIM has that Reprise refuses, with the reason given to the operator.
_REFUSED: dict[str, str] = {
    "increment-condition": "is not supported (a lookup hit already skips the rate limit, "
    "so placed after the lookup it counts misses only)",
    "retry-after-variable-name": "is not supported (Reprise has no policy variables)",
    "remaining-calls-variable-name": "is not supported (Reprise has no policy variables)",
    # The counters report only "allowed, retry after", so these could not be honoured;
    # refusing them beats a header the operator expects and never sees.
    "remaining-calls-header-name": "is not supported (Reprise sends Retry-After on 429 only)",
    "total-calls-header-name": "is not supported (Reprise sends Retry-After on 429 only)",
    "base-url": "is not supported: configure a backend and name it with backend-id",
}


def _attrs(node: _Node, table: Mapping[str, _Attr], ctx: _Context) -> dict[str, Any]:
    """Convert `node`'s attributes by `table` into dataclass keyword arguments."""
    _check_attrs(node, table, ctx)
    fields: dict[str, Any] = {}
    for name, spec in table.items():
        if name not in node.attrs:
            if spec.required:
                raise ctx.error(node.line, f"attribute {name!r} is required", node.tag)
            continue
        try:
            value = spec.convert(node.attrs[name])
        except (ValueError, ConfigError) as exc:
            raise ctx.error(node.line, f"attribute {name!r} {_reason(exc)}", node.tag) from None
        if spec.field is not None:
            fields[spec.field] = value
    return fields


def _reason(exc: Exception) -> str:
    message = str(exc)
    return message if message.startswith("must") else f"is invalid: {message}"


def _check_attrs(node: _Node, table: Mapping[str, _Attr], ctx: _Context) -> None:
    for name in node.attrs:
        if name in table:
            continue
        if name in _REFUSED:
            raise ctx.error(node.line, f"attribute {name!r} {_REFUSED[name]}", node.tag)
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        allowed = ", ".join(table) or "none"
        raise ctx.error(
            node.line, f"unknown attribute {name!r} ({hint}allowed: {allowed})", node.tag
        )
