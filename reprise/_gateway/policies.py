"""APIM policy XML, parsed and checked into frozen policy objects.

A team moving off API Management pastes its `<policies>` document unchanged:

    <policies>
      <inbound>   <base/> lookup, rate-limit, rate-limit-by-key, set-backend-service </inbound>
      <backend>   <base/> or <forward-request timeout="s" buffer-response="false"/> </backend>
      <outbound>  store, <base/> </outbound>
      <on-error>  <base/> </on-error>
    </policies>

`<set-backend-service backend-id="...">` and the forward timeout are constant,
so they are resolved at load into the API's backend (`Policies.backend_id`,
`Policies.forward_timeout`), not run per request.

Both families are accepted: `llm-semantic-cache-lookup|store` and
`azure-openai-semantic-cache-lookup|store`. Every element or attribute the
gateway does not implement is a `ConfigError` naming it and its line: an
ignored `<ip-filter>` or `<authentication-...>` would be a security hole, an
ignored `<set-header>` a silent behaviour change.

A lookup without a store, or a store without a lookup, is an error too. The
store writes under the key the lookup computed (partition, vary-by, prompt), as
in APIM, so a lone store has nothing to write under; a lone lookup would pay an
embedding on every request for a cache nothing ever fills.

The XML is read with expat, the parser under `xml.etree`, because it reports
line numbers; DTDs are refused, so no entity can expand or reach outside (see
`policy_xml`, which also holds the node shape checks).

Adding an attribute to a policy (the verifier settings of the lookup, say) is
two lines: a field on its dataclass and a row in its `_Attr` table (in
`policy_attrs`, with the converters and the attributes refused).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from reprise._exceptions import ConfigError
from reprise._gateway.expressions import Expression, RequestContext, compile_expression
from reprise._gateway.policy_attrs import (
    _FORWARD,
    _LOOKUP,
    _RATE,
    _RATE_BY_KEY,
    _SET_BACKEND,
    _STORE,
    _attrs,
    _check_attrs,
)
from reprise._gateway.policy_xml import (
    _check_no_children,
    _check_no_text,
    _Context,
    _Node,
    _read_xml,
    _XmlError,
)

__all__ = [
    "Policies",
    "Policy",
    "RateLimit",
    "RateLimitByKey",
    "SemanticCacheLookup",
    "SemanticCacheStore",
    "describe",
    "parse_policies",
]

Family = Literal["llm", "azure-openai"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticCacheLookup:
    """`<llm-semantic-cache-lookup>` / `<azure-openai-semantic-cache-lookup>`.

    `score_threshold` is a cosine distance in [0, 1]: lower is stricter, 0
    serves exact repeats only. `vary_by` are the `<vary-by>` expressions in
    document order; `vary_by_values` evaluates them for one request.
    """

    score_threshold: float
    embeddings_backend_id: str
    ignore_system_messages: bool = False
    max_message_count: int | None = None
    # Reprise's own: the verifier's strictness, the share of semantic hits meant
    # to be right (0.80-0.99); None keeps the cache's default (0.95).
    target_precision: float | None = None
    vary_by: tuple[Expression, ...] = ()
    family: Family = "llm"
    line: int = field(default=0, compare=False)  # where it was written, for messages

    def vary_by_values(self, ctx: RequestContext) -> tuple[str, ...]:
        """The `<vary-by>` values in order.

        APIM concatenates them; pass the tuple to `partition_key(vary_by=...)`,
        which keeps their boundaries, so ("ab", "c") and ("a", "bc") differ.
        """
        return tuple(expr.evaluate(ctx) for expr in self.vary_by)


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticCacheStore:
    """`<llm-semantic-cache-store>` / `<azure-openai-semantic-cache-store>`.

    `duration` is the entries' time to live in seconds. `cache_response`
    follows APIM: omitted or false stores 200 OK responses only; true widens
    that to every 2xx. Errors are never stored whatever it says (see
    `cacheable_statuses`), because a cached failure would outlive the outage.
    """

    duration: int
    cache_response: bool = False
    family: Family = "llm"
    line: int = field(default=0, compare=False)  # where it was written, for messages

    @property
    def cacheable_statuses(self) -> frozenset[int]:
        """The backend statuses worth storing; for `is_cacheable_response(statuses=...)`."""
        return frozenset(range(200, 300)) if self.cache_response else frozenset({200})


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """`<rate-limit>`: at most `calls` requests per `renewal_period` seconds per API.

    It runs where it stands among the inbound policies, so placed after the
    lookup (as APIM recommends) it counts misses only. A 429 carries the
    seconds to wait in `retry_after_header_name`. In APIM an API's inbound
    policies run for every operation, so the limit covers the proxied paths
    (embeddings, models, ...) as well as the cached ones.
    """

    calls: int
    renewal_period: int
    retry_after_header_name: str = "Retry-After"
    line: int = field(default=0, compare=False)  # where it was written, for messages


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitByKey:
    """`<rate-limit-by-key>`: like `RateLimit`, one counter per `counter_key` value.

    Each request adds `increment_count` to its key's counter.
    """

    calls: int
    renewal_period: int
    counter_key: Expression
    increment_count: int = 1
    retry_after_header_name: str = "Retry-After"
    line: int = field(default=0, compare=False)  # where it was written, for messages


Policy = SemanticCacheLookup | SemanticCacheStore | RateLimit | RateLimitByKey


class PolicySections:
    """The cache policies of a pair of sections; shared by `Policies` and the config's `Api`."""

    __slots__ = ()
    inbound: tuple[Policy, ...]
    outbound: tuple[Policy, ...]

    @property
    def lookup(self) -> SemanticCacheLookup | None:
        return next((p for p in self.inbound if isinstance(p, SemanticCacheLookup)), None)

    @property
    def store(self) -> SemanticCacheStore | None:
        return next((p for p in self.outbound if isinstance(p, SemanticCacheStore)), None)


@dataclass(frozen=True, slots=True)
class Policies(PolicySections):
    """An API's policies, section by section, in document order (`<base/>` dropped)."""

    inbound: tuple[Policy, ...] = ()
    outbound: tuple[Policy, ...] = ()
    #: `<set-backend-service backend-id="...">`: the backend this API's requests go to.
    backend_id: str | None = None
    #: `<forward-request timeout="...">`: seconds, overriding the backend's timeout.
    forward_timeout: int | None = None


# --- sections -------------------------------------------------------------------------

_LOOKUP_TAGS: dict[str, Family] = {
    "llm-semantic-cache-lookup": "llm",
    "azure-openai-semantic-cache-lookup": "azure-openai",
}
_STORE_TAGS: dict[str, Family] = {
    "llm-semantic-cache-store": "llm",
    "azure-openai-semantic-cache-store": "azure-openai",
}
_SECTIONS = ("inbound", "backend", "outbound", "on-error")

# Elements APIM policies for LLM APIs often hold, and what to do instead.
_HINTS: dict[str, str] = {
    "authentication-managed-identity": "Reprise has no managed identity; put the credential "
    "in the backend's headers (backends.<id>.headers)",
    "set-header": "to send a header upstream, put it in the backend's headers",
    "llm-token-limit": "use rate-limit or rate-limit-by-key",
    "azure-openai-token-limit": "use rate-limit or rate-limit-by-key",
    "llm-emit-token-metric": "Reprise serves Prometheus metrics at /metrics instead",
    "azure-openai-emit-token-metric": "Reprise serves Prometheus metrics at /metrics instead",
}


def parse_policies(
    text: str, *, backends: Collection[str], where: str = "policies", line_offset: int = 0
) -> Policies:
    """Parse a `<policies>` document; `ConfigError` names `where` and the line.

    `backends` are the ids an `embeddings-backend-id` may name. `line_offset`
    is added to XML line numbers, so that they count from the config file's start.
    """
    ctx = _Context(where, line_offset, backends)
    try:
        root = _read_xml(text)
    except _XmlError as exc:
        raise ctx.error(exc.line, exc.message) from None
    if root.tag != "policies":
        raise ctx.error(root.line, "the root element must be <policies>", root.tag)
    _check_attrs(root, {}, ctx)
    _check_no_text(root, ctx)
    sections: dict[str, _Node] = {}
    for node in root.children:
        if node.tag not in _SECTIONS:
            raise ctx.error(node.line, f"unknown section; expected one of {_SECTIONS}", node.tag)
        if node.tag in sections:
            raise ctx.error(node.line, "section appears twice", node.tag)
        _check_attrs(node, {}, ctx)
        _check_no_text(node, ctx)
        sections[node.tag] = node
    inbound, backend_id = _inbound(sections.get("inbound"), ctx)
    policies = Policies(
        inbound=inbound,
        outbound=_outbound(sections.get("outbound"), ctx),
        backend_id=backend_id,
        forward_timeout=_backend_section(sections.get("backend"), ctx),
    )
    _check_passthrough(sections.get("on-error"), ("base",), ctx)
    _check_pairing(policies, root, ctx)
    return policies


def _inbound(section: _Node | None, ctx: _Context) -> tuple[tuple[Policy, ...], str | None]:
    policies: list[Policy] = []
    backend_id: str | None = None
    for node in section.children if section else []:
        if node.tag == "base":
            _check_empty(node, ctx)
        elif node.tag == "set-backend-service":
            if backend_id is not None:
                raise ctx.error(node.line, "may appear only once in its section", node.tag)
            backend_id = _set_backend(node, ctx)
        elif node.tag in _LOOKUP_TAGS:
            _once(policies, SemanticCacheLookup, node, ctx)
            policies.append(_lookup(node, ctx))
        elif node.tag == "rate-limit":
            _once(policies, RateLimit, node, ctx)
            _check_no_children(node, ctx)
            policies.append(RateLimit(**_attrs(node, _RATE, ctx), line=ctx.line_offset + node.line))
        elif node.tag == "rate-limit-by-key":
            _check_no_children(node, ctx)
            fields = _attrs(node, _RATE_BY_KEY, ctx)
            policies.append(RateLimitByKey(**fields, line=ctx.line_offset + node.line))
        else:
            raise _unsupported(node, "inbound", ctx)
    return tuple(policies), backend_id


def _set_backend(node: _Node, ctx: _Context) -> str:
    """`<set-backend-service backend-id="...">`, constant, so resolved at load."""
    _check_no_children(node, ctx)
    backend_id: str = _attrs(node, _SET_BACKEND, ctx)["backend_id"]
    if backend_id not in ctx.backends:
        known = ", ".join(sorted(ctx.backends)) or "none"
        raise ctx.error(
            node.line, f"backend-id {backend_id!r} is not a configured backend ({known})", node.tag
        )
    return backend_id


def _backend_section(section: _Node | None, ctx: _Context) -> int | None:
    """`<backend>`: `<base/>`, or `<forward-request>` with at most a timeout."""
    timeout: int | None = None
    for node in section.children if section else []:
        if node.tag == "base":
            _check_empty(node, ctx)
        elif node.tag == "forward-request":
            _check_no_children(node, ctx)
            timeout = _attrs(node, _FORWARD, ctx).get("timeout")
        else:
            raise _unsupported(node, "backend", ctx)
    return timeout


def _outbound(section: _Node | None, ctx: _Context) -> tuple[Policy, ...]:
    policies: list[Policy] = []
    for node in section.children if section else []:
        if node.tag == "base":
            _check_empty(node, ctx)
        elif node.tag in _STORE_TAGS:
            _once(policies, SemanticCacheStore, node, ctx)
            _check_no_children(node, ctx)
            fields = _attrs(node, _STORE, ctx)
            policies.append(
                SemanticCacheStore(
                    **fields, family=_STORE_TAGS[node.tag], line=ctx.line_offset + node.line
                )
            )
        else:
            raise _unsupported(node, "outbound", ctx)
    return tuple(policies)


def _lookup(node: _Node, ctx: _Context) -> SemanticCacheLookup:
    fields = _attrs(node, _LOOKUP, ctx)
    backend = fields["embeddings_backend_id"]
    if backend not in ctx.backends:
        known = ", ".join(sorted(ctx.backends)) or "none"
        raise ctx.error(
            node.line,
            f"embeddings-backend-id {backend!r} is not a configured backend (configured: {known})",
            node.tag,
        )
    _check_no_text(node, ctx)
    vary_by: list[Expression] = []
    for child in node.children:
        if child.tag != "vary-by":
            raise ctx.error(child.line, f"unsupported element <{child.tag}> in <{node.tag}>")
        _check_attrs(child, {}, ctx)
        if child.children:
            raise ctx.error(child.line, "<vary-by> holds text only", child.tag)
        text = "".join(child.text).strip()
        if not text:
            raise ctx.error(child.line, "<vary-by> is empty", child.tag)
        try:
            vary_by.append(compile_expression(text))
        except ConfigError as exc:
            raise ctx.error(child.line, str(exc), child.tag) from None
    return SemanticCacheLookup(
        **fields,
        vary_by=tuple(vary_by),
        family=_LOOKUP_TAGS[node.tag],
        line=ctx.line_offset + node.line,
    )


def _check_empty(node: _Node, ctx: _Context) -> None:
    _check_attrs(node, {}, ctx)
    _check_no_children(node, ctx)


def _check_passthrough(section: _Node | None, allowed: tuple[str, ...], ctx: _Context) -> None:
    """`<backend>` and `<on-error>` may only say "do the default"."""
    for node in section.children if section else []:
        if node.tag not in allowed:
            raise _unsupported(node, section.tag if section else "", ctx)
        _check_empty(node, ctx)


def _once(policies: list[Policy], kind: type, node: _Node, ctx: _Context) -> None:
    if any(isinstance(p, kind) for p in policies):
        raise ctx.error(node.line, "may appear only once in its section", node.tag)


def _unsupported(node: _Node, section: str, ctx: _Context) -> ConfigError:
    where = "lookup" if node.tag in _LOOKUP_TAGS else "store" if node.tag in _STORE_TAGS else ""
    if where == "lookup":
        return ctx.error(node.line, f"belongs in <inbound>, not <{section}>", node.tag)
    if where == "store":
        return ctx.error(node.line, f"belongs in <outbound>, not <{section}>", node.tag)
    hint = f"; {_HINTS[node.tag]}" if node.tag in _HINTS else ""
    return ctx.error(
        node.line,
        f"unsupported element in <{section}>: Reprise does not implement it{hint}",
        node.tag,
    )


def _check_pairing(policies: Policies, root: _Node, ctx: _Context) -> None:
    lookup, store = policies.lookup, policies.store
    if lookup is not None and store is None:
        raise ctx.error(
            lookup.line - ctx.line_offset,
            "has no semantic-cache-store in <outbound>: nothing would ever fill the cache",
            "llm-semantic-cache-lookup"
            if lookup.family == "llm"
            else "azure-openai-semantic-cache-lookup",
        )
    if store is not None and lookup is None:
        raise ctx.error(
            store.line - ctx.line_offset,
            "has no semantic-cache-lookup in <inbound>: the store writes under the key "
            "the lookup computes",
            "llm-semantic-cache-store"
            if store.family == "llm"
            else "azure-openai-semantic-cache-store",
        )


def describe(policy: Policy) -> str:
    """One short line for a policy, for `reprise check` and logs (no secrets in policies)."""
    if isinstance(policy, SemanticCacheLookup):
        vary = " + ".join(e.source for e in policy.vary_by) or "none"
        limit = f", max {policy.max_message_count} messages" if policy.max_message_count else ""
        system = ", ignoring system messages" if policy.ignore_system_messages else ""
        return (
            f"lookup: distance <= {policy.score_threshold} with {policy.embeddings_backend_id!r}"
            f", vary-by {vary}{system}{limit}"
        )
    if isinstance(policy, SemanticCacheStore):
        statuses = "2xx" if policy.cache_response else "200"
        return f"store: {statuses} responses for {policy.duration} s"
    if isinstance(policy, RateLimitByKey):
        return (
            f"rate-limit-by-key: {policy.calls} calls / {policy.renewal_period} s"
            f" per {policy.counter_key.source}"
        )
    return f"rate-limit: {policy.calls} calls / {policy.renewal_period} s"
