"""APIM policy expressions, the few that cache keys and rate-limit keys are made of.

APIM evaluates C# in `@(...)`; Reprise runs no code from config. It compiles
the handful of expressions people actually write in `<vary-by>` and
`counter-key` into small objects, once, at load time:

    @(context.Subscription.Id)                                  the subscription's id
    @(context.Subscription.Key)                                 the key the caller sent
    @(context.Api.Id)                                           the API's `name`
    @(context.Request.IpAddress)                                the client's address
    @(context.Request.Headers.GetValueOrDefault("name"))        a header, "" if absent
    @(context.Request.Headers.GetValueOrDefault("name", "d"))   a header, "d" if absent
    any text without `@(`                                       itself, literally

`?.` may stand for `.` (`context.Subscription?.Id`), as APIM policies often write.

Anything else, including `@{...}` blocks and text mixed with `@(...)`, is a
`ConfigError` that quotes the expression: a policy that silently partitioned
nothing would share answers between callers who must not see each other's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reprise._exceptions import ConfigError

__all__ = ["Expression", "RequestContext", "compile_expression"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What an expression may read about one request.

    `headers` must look names up case-insensitively, as starlette's `Headers`
    does (a plain dict works if its keys are lower case). A field the request
    does not have is "": with no subscription, `context.Subscription.Id` is "".
    `subscription_key` is kept out of `repr` so that it never reaches a log.
    """

    subscription_id: str = ""
    subscription_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    api_id: str = ""
    ip_address: str = ""


class Expression(Protocol):
    """A compiled expression. `source` is the text it came from, for messages and traces."""

    @property
    def source(self) -> str: ...

    def evaluate(self, ctx: RequestContext) -> str: ...


@dataclass(frozen=True, slots=True)
class Literal:
    """Plain text: evaluates to itself."""

    source: str

    def evaluate(self, ctx: RequestContext) -> str:
        return self.source


@dataclass(frozen=True, slots=True)
class ContextValue:
    """One of the request's own facts: `attribute` names a `RequestContext` field."""

    source: str
    attribute: str

    def evaluate(self, ctx: RequestContext) -> str:
        value: str = getattr(ctx, self.attribute)
        return value


@dataclass(frozen=True, slots=True)
class HeaderValue:
    """`context.Request.Headers.GetValueOrDefault(name, default)`."""

    source: str
    name: str
    default: str = ""

    def evaluate(self, ctx: RequestContext) -> str:
        value = ctx.headers.get(self.name)
        return self.default if value is None else value


# The C# member paths Reprise understands, and the RequestContext field each reads.
_MEMBERS: dict[str, str] = {
    "context.Subscription.Id": "subscription_id",
    "context.Subscription.Key": "subscription_key",
    "context.Api.Id": "api_id",
    "context.Request.IpAddress": "ip_address",
}

# A C# regular string literal; escapes other than \" and \\ are rare in header names.
_STRING = r'"((?:[^"\\]|\\.)*)"'
_HEADER_CALL = re.compile(
    r"context\s*\.\s*Request\s*\.\s*Headers\s*\.\s*GetValueOrDefault\s*\(\s*"
    + _STRING
    + r"\s*(?:,\s*"
    + _STRING
    + r"\s*)?\)"
)
_WRAPPED = re.compile(r"@\((.*)\)", re.DOTALL)
# `?.` outside string literals; a literal is matched first and kept as it is.
_NULL_CONDITIONAL = re.compile(r'("(?:[^"\\]|\\.)*")|\s*\?\s*\.')


def compile_expression(text: str) -> Expression:
    """Compile a policy attribute or element value; `ConfigError` if unsupported.

    The error message quotes the expression; callers prefix where it was found.
    """
    stripped = text.strip()
    if "@(" not in stripped and not stripped.startswith("@{"):
        return Literal(text)
    wrapped = _WRAPPED.fullmatch(stripped)
    if wrapped is None:
        raise ConfigError(
            f"unsupported expression {stripped!r}: write the whole value as one @(...) "
            "or as plain text"
        )
    # `?.` (null-conditional) reads the same here: a missing fact is already "".
    inner = _NULL_CONDITIONAL.sub(lambda m: m.group(1) or ".", wrapped.group(1).strip())
    member = re.sub(r"\s*\.\s*", ".", inner)
    if member in _MEMBERS:
        return ContextValue(stripped, _MEMBERS[member])
    call = _HEADER_CALL.fullmatch(inner)
    if call is not None:
        name, default = call.group(1), call.group(2)
        return HeaderValue(stripped, _unescape(name).lower(), _unescape(default or ""))
    raise ConfigError(
        f"unsupported expression {stripped!r}; supported: "
        + ", ".join(f"@({m})" for m in _MEMBERS)
        + ', @(context.Request.Headers.GetValueOrDefault("name"[, "default"])) and plain text'
    )


def _unescape(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)
