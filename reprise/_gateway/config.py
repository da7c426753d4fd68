"""The gateway's configuration: YAML in, frozen objects out, every mistake caught at load.

Loading happens in two steps, as in uvicorn: `load_config` reads and validates
everything here, without I/O beyond reading files; the app opens stores,
embedders and connection pools at startup from the frozen `GatewayConfig`.

    backends:                       # id -> upstream
      chat-backend:
        url: http://127.0.0.1:9000/v1          # base URL; the path suffix and query are appended
        headers: { Authorization: "Bearer ${UPSTREAM_API_KEY}" }
        timeout: 300                           # seconds (default 300)
      embeddings-backend:
        url: local                             # the in-process model, or an embeddings endpoint URL
        model: text-embedding-3-small          # optional, sent to a remote embeddings endpoint
        threads: 2                             # optional, local model: ONNX Runtime threads
    subscriptions:                  # optional: id -> key; callers send the key as api-key,
      team-a: { key: "${TEAM_A_KEY}" }  # Authorization: Bearer, or Ocp-Apim-Subscription-Key
    cache:
      url: ./reprise-data                      # a directory, ":memory:" or redis://host:port
      lookup-budget-ms: 250                    # a slower lookup fails open (X-Cache-Status: FAILED)
      max-lookups-in-flight: 64                # semantic lookups embedded at once (micro-batched)
      max-lookups-queued: 256                  # more wait; beyond that, or if it could not finish
                                               # within the budget, a lookup fails open at once
      share-across-credentials: false          # see "Partitioning" below
      max-entries: 100000                      # optional: least recently used entries evicted
      max-bytes: 2000000000                    #   past either bound (embedded store only)
    admin: { key: "${REPRISE_ADMIN_KEY}" }     # optional: the admin API, see adminconfig.py
    prices: { gpt-4o: { input-per-million: 2.5, output-per-million: 10 } }   # optional
    max-body-bytes: 16777216                   # larger requests get a 413
    apis:
      - name: my-api                           # context.Api.Id
        path: /my-api                          # requests under this prefix belong to the API
        backend: chat-backend                  # or <set-backend-service> in the policies
        policies: |                            # APIM policy XML, pasted unchanged
          <policies> ... </policies>
        # or: policies-file: my-api.xml        # relative to the config file

`${VAR}` in any value is replaced by the environment variable, `${VAR:-text}`
falls back to `text`, and `$${` is a literal `${`. An unset variable without a
default is an error naming it and its line; comments are never expanded. An
expanded value is a string; a numeric or true/false setting parses it.

Settings that are legal but probably unmeant (subscriptions configured yet a
lookup without a subscription `<vary-by>`) land in `GatewayConfig.warnings`,
which `load_config` logs.

Partitioning. Answers are shared only within a partition. The lookup's
`<vary-by>` values go into it, as in APIM. Besides, when no subscriptions are
configured, the gateway cannot tell callers apart by subscription, so by
default it also partitions by the caller's credential (a hash of the `api-key`
header or the `Authorization` bearer token): two API keys never share answers.
`cache: {share-across-credentials: true}` turns that off, for a gateway whose
callers all may see each other's answers. With subscriptions configured the
policy decides, as in APIM: write `<vary-by>@(context.Subscription.Id)</vary-by>`
to keep subscriptions apart. `GatewayConfig.partition_by_credential` is the
resulting rule.
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from reprise._exceptions import ConfigError
from reprise._gateway.adminconfig import AdminSettings, Prices, read_admin, read_prices
from reprise._gateway.policies import (
    Policies,
    Policy,
    PolicySections,
    describe,
    parse_policies,
)
from reprise._gateway.yamlsource import Map, Seq, YamlReader

__all__ = [
    "Api",
    "Backend",
    "CacheSettings",
    "GatewayConfig",
    "Subscription",
    "check",
    "load_config",
    "parse_config",
    "redact",
]

logger = logging.getLogger("reprise.config")

#: The gateway's own endpoints, which no API may take.
RESERVED_PATHS = frozenset({"/metrics", "/healthz"})

DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Backend:
    """An upstream. `url` is a base URL, or "local" for the in-process embedding model.

    `headers` are sent on every request to it (credentials: kept out of `repr`).
    `timeout` is in seconds. `model` is the model name a remote embeddings
    endpoint is asked for (None: the endpoint's default, or an Azure deployment URL).
    `threads` is the local model's ONNX Runtime thread count (None: its default).
    """

    id: str
    url: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    timeout: float = DEFAULT_TIMEOUT
    model: str | None = None
    threads: int | None = None

    @property
    def is_local(self) -> bool:
        return self.url == "local"

    def __hash__(self) -> int:
        # The headers mapping is read-only but not hashable; hash its items so that
        # a Backend, and so an Api, can key a dict.
        headers = tuple(sorted(self.headers.items()))
        return hash((self.id, self.url, headers, self.timeout, self.model, self.threads))


@dataclass(frozen=True, slots=True)
class Subscription:
    """A caller identity: `id` is `context.Subscription.Id`; `key` is never shown."""

    id: str
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The cache store and lookup limits.

    `url` is a directory (the embedded store), ":memory:" or a redis:// URL,
    which may hold a password: show it through `redact`, as `repr` does.
    A lookup slower than `lookup_budget_ms` fails open. `candidates` is how many
    nearest entries a lookup considers. See the module docstring for
    `share_across_credentials`. Per embeddings backend, as many semantic lookups
    run at once (sharing model calls) as the measured lookup rate, batching
    allowed for, finishes within the budget, at most `max_lookups_in_flight`,
    and `max_lookups_queued` more
    wait; a lookup refused at admission (queue full, or expected to finish past
    the budget) fails open at once, counted in
    `reprise_cache_lookups_shed_total` (`reprise._gateway.admission`). Exact
    repeats never queue. `max_entries` and `max_bytes` bound the
    embedded store (least recently used evicted; None: unbounded); Redis bounds
    itself with `maxmemory` (README, "Operating Reprise").
    """

    url: str = field(default="./reprise-data", repr=False)
    lookup_budget_ms: float = 250.0
    share_across_credentials: bool = False
    candidates: int = 5
    max_lookups_in_flight: int = 64
    max_lookups_queued: int = 256
    max_entries: int | None = None
    max_bytes: int | None = None

    def __repr__(self) -> str:
        return (
            f"CacheSettings(url={redact(self.url)!r}, lookup_budget_ms={self.lookup_budget_ms}, "
            f"share_across_credentials={self.share_across_credentials}, "
            f"candidates={self.candidates}, max_lookups_in_flight={self.max_lookups_in_flight}, "
            f"max_lookups_queued={self.max_lookups_queued}, max_entries={self.max_entries}, "
            f"max_bytes={self.max_bytes})"
        )


@dataclass(frozen=True, slots=True)
class Api(PolicySections):
    """One API: requests under `path` go to `backend` through the policies.

    `path` has a leading and no trailing slash ("" for an API at the root).
    `backend` is the `backend:` key's or the policies' `<set-backend-service>`,
    with a `<forward-request timeout>` already applied to its `timeout`.
    `inbound` and `outbound` are the policies in document order; `lookup`,
    `store` and `embeddings` (the lookup's embeddings backend) are shortcuts.
    """

    name: str
    path: str
    backend: Backend
    inbound: tuple[Policy, ...] = ()
    outbound: tuple[Policy, ...] = ()
    embeddings: Backend | None = None

    @property
    def cached(self) -> bool:
        """True when the API has a semantic cache (a lookup and its store)."""
        return self.lookup is not None


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole, validated gateway configuration; build it with `load_config`."""

    backends: Mapping[str, Backend]
    apis: tuple[Api, ...]
    subscriptions: tuple[Subscription, ...] = ()
    cache: CacheSettings = CacheSettings()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    source: str = "<string>"
    warnings: tuple[str, ...] = ()
    admin: AdminSettings | None = None
    prices: Prices = field(default_factory=lambda: MappingProxyType({}))

    @property
    def partition_by_credential(self) -> bool:
        """True when the app must add a hash of the caller's credential to the partition.

        That is with no subscriptions configured, unless the cache is declared
        shared (`cache: {share-across-credentials: true}`).
        """
        return not self.subscriptions and not self.cache.share_across_credentials

    def subscription_for_key(self, key: str) -> Subscription | None:
        """The subscription `key` belongs to, or None.

        Every key is compared, in constant time, so that neither a key's
        content nor its position leaks through timing.
        """
        found: Subscription | None = None
        given = key.encode()
        for subscription in self.subscriptions:
            if hmac.compare_digest(subscription.key.encode(), given):
                found = subscription
        return found

    def match_api(self, path: str) -> tuple[Api, str] | None:
        """The API whose path prefixes `path` (longest first), and the rest of the path.

        "/my-api/v1/chat/completions" -> (my-api, "/v1/chat/completions"). A
        prefix matches on a segment boundary only: "/my-api2" is not under "/my-api".
        """
        best: Api | None = None
        for api in self.apis:
            if (path == api.path or path.startswith(api.path + "/")) and (
                best is None or len(api.path) > len(best.path)
            ):
                best = api
        return None if best is None else (best, path[len(best.path) :])

    @property
    def embeddings_backends(self) -> tuple[Backend, ...]:
        """The backends some lookup embeds with, each once, in order of first use."""
        seen: dict[str, Backend] = {}
        for api in self.apis:
            if api.embeddings is not None:
                seen.setdefault(api.embeddings.id, api.embeddings)
        return tuple(seen.values())


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a YAML config file; `ConfigError` names the key and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    config = parse_config(text, source=str(path), base_dir=path.parent)
    for warning in config.warnings:
        logger.warning("%s", warning)
    return config


def check(args: argparse.Namespace) -> int:
    """`reprise check --config FILE`: validate, then show what the gateway would run."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"reprise check: {exc}", file=sys.stderr)
        return 2
    partitioning = "per credential" if config.partition_by_credential else "by policy"
    print(f"{config.source}: ok ({len(config.subscriptions)} subscriptions, cache {partitioning})")
    for api in config.apis:
        print(f"  {api.path or '/'} ({api.name}) -> {api.backend.id} {redact(api.backend.url)}")
        for section, policies in (("inbound", api.inbound), ("outbound", api.outbound)):
            for policy in policies:
                print(f"    {section:8} {describe(policy)}")
    return 0


def parse_config(
    text: str, *, source: str = "<string>", base_dir: str | Path | None = None
) -> GatewayConfig:
    """Validate YAML config `text`. `base_dir` anchors relative `policies-file` paths."""
    reader = _Reader(source, Path(base_dir) if base_dir is not None else Path.cwd())
    config = reader.gateway(reader.document(text))
    return dataclasses.replace(config, warnings=_warnings(config))


def _warnings(config: GatewayConfig) -> tuple[str, ...]:
    """Legal settings that probably do not do what was meant; `load_config` logs them."""
    found: list[str] = []
    if config.subscriptions and config.cache.share_across_credentials:
        found.append(
            f"{config.source}: cache.share-across-credentials has no effect with subscriptions "
            "configured: the lookup's <vary-by> decides who shares answers"
        )
    for i, api in enumerate(config.apis):
        lookup = api.lookup
        if not config.subscriptions or lookup is None:
            continue
        if not any("Subscription" in expr.source for expr in lookup.vary_by):
            found.append(
                f"{config.source}: apis[{i}].policies line {lookup.line}: all subscriptions "
                "share cached answers; add <vary-by>@(context.Subscription.Id)</vary-by> "
                "to keep them apart"
            )
    return tuple(found)


class _Reader(YamlReader):
    """Turns the YAML document into the config objects, failing with key path and line."""

    def __init__(
        self, source: str, base_dir: Path, environ: Mapping[str, str] = os.environ
    ) -> None:
        super().__init__(source, environ)
        self.base_dir = base_dir

    # -- sections

    def gateway(self, root: Map) -> GatewayConfig:
        self.keys(
            root,
            "",
            ("backends", "subscriptions", "cache", "max-body-bytes", "apis", "admin", "prices"),
            required=("backends", "apis"),
        )
        backends = self.backends(root)
        subscriptions = self.subscriptions(root)
        admin = read_admin(self, root)
        if admin is not None and any(s.key == admin.key for s in subscriptions):
            # A caller's key must never open the admin API.
            raise self.fail(
                "admin.key", root.lines["admin"], "must differ from every subscription key"
            )
        return GatewayConfig(
            backends=MappingProxyType(backends),
            apis=self.apis(root, backends),
            subscriptions=subscriptions,
            cache=self.cache(root),
            max_body_bytes=self.integer(root, "max-body-bytes", "", DEFAULT_MAX_BODY_BYTES),
            source=self.source,
            admin=admin,
            prices=read_prices(self, root),
        )

    def backends(self, root: Map) -> dict[str, Backend]:
        section = self.mapping(root["backends"], "backends", root.lines["backends"])
        if not section:
            raise self.fail("backends", section.line, "configure at least one backend")
        backends: dict[str, Backend] = {}
        for backend_id, value in section.items():
            path = f"backends.{backend_id}"
            m = self.mapping(value, path, section.lines[backend_id])
            self.keys(m, path, ("url", "headers", "timeout", "model", "threads"), required=("url",))
            headers = self.mapping(m.get("headers", Map(m.line)), f"{path}.headers", m.line)
            backends[backend_id] = Backend(
                id=backend_id,
                url=self.url(m, path),
                headers=MappingProxyType(
                    {name: self.string(headers, name, f"{path}.headers") for name in headers}
                ),
                timeout=self.number(m, "timeout", path, DEFAULT_TIMEOUT),
                model=self.string(m, "model", path) if "model" in m else None,
                threads=self.threads(m, path),
            )
        return backends

    def threads(self, m: Map, path: str) -> int | None:
        if "threads" not in m:
            return None
        if m.get("url") != "local":
            raise self.fail(f"{path}.threads", m.lines["threads"], "only for url: local")
        return self.integer(m, "threads", path, 1)

    def url(self, m: Map, path: str) -> str:
        url = self.string(m, "url", path)
        if url == "local":
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(
                f"{path}.url",
                m.lines["url"],
                f"must be an http(s):// URL or 'local', not {redact(url)!r}",
            )
        return url.rstrip("/")

    def subscriptions(self, root: Map) -> tuple[Subscription, ...]:
        if "subscriptions" not in root or root["subscriptions"] is None:
            return ()
        section = self.mapping(root["subscriptions"], "subscriptions", root.lines["subscriptions"])
        owners: dict[str, str] = {}
        result: list[Subscription] = []
        for sub_id, value in section.items():
            path = f"subscriptions.{sub_id}"
            m = self.mapping(value, path, section.lines[sub_id])
            self.keys(m, path, ("key",), required=("key",))
            key = self.string(m, "key", path)
            if key in owners:
                # Name the other subscription, never the key itself.
                raise self.fail(f"{path}.key", m.lines["key"], f"same key as {owners[key]!r}")
            owners[key] = sub_id
            result.append(Subscription(sub_id, key))
        return tuple(result)

    def cache(self, root: Map) -> CacheSettings:
        if "cache" not in root or root["cache"] is None:
            return CacheSettings()
        m = self.mapping(root["cache"], "cache", root.lines["cache"])
        allowed = (
            "url",
            "lookup-budget-ms",
            "share-across-credentials",
            "candidates",
            "max-lookups-in-flight",
            "max-lookups-queued",
            "max-entries",
            "max-bytes",
        )
        self.keys(m, "cache", allowed)
        defaults = CacheSettings()
        url = self.string(m, "url", "cache", defaults.url)
        bounds = {k: self.integer(m, k, "cache", 1) for k in ("max-entries", "max-bytes") if k in m}
        if bounds and "://" in url:
            key = next(iter(bounds))
            raise self.fail(
                f"cache.{key}",
                m.lines[key],
                "bounds the embedded store only; Redis bounds itself: set its maxmemory "
                "and maxmemory-policy allkeys-lru (README, 'Operating Reprise')",
            )
        return CacheSettings(
            url=url,
            max_entries=bounds.get("max-entries"),
            max_bytes=bounds.get("max-bytes"),
            lookup_budget_ms=self.number(m, "lookup-budget-ms", "cache", defaults.lookup_budget_ms),
            share_across_credentials=self.boolean(
                m, "share-across-credentials", "cache", defaults.share_across_credentials
            ),
            candidates=self.integer(m, "candidates", "cache", defaults.candidates),
            max_lookups_in_flight=self.integer(
                m, "max-lookups-in-flight", "cache", defaults.max_lookups_in_flight
            ),
            max_lookups_queued=self.integer(
                m, "max-lookups-queued", "cache", defaults.max_lookups_queued
            ),
        )

    def apis(self, root: Map, backends: Mapping[str, Backend]) -> tuple[Api, ...]:
        section = root["apis"]
        if not isinstance(section, Seq) or not section:
            raise self.fail("apis", root.lines["apis"], "must be a non-empty list of APIs")
        apis: list[Api] = []
        for i, value in enumerate(section):
            api = self.api(self.mapping(value, f"apis[{i}]", section.lines[i]), i, backends)
            for other in apis:
                if other.name == api.name or other.path == api.path:
                    what = "name" if other.name == api.name else "path"
                    raise self.fail(
                        f"apis[{i}].{what}",
                        value.lines[what],
                        f"same {what} as apis[{apis.index(other)}]",
                    )
            apis.append(api)
        return tuple(apis)

    def api(self, m: Map, i: int, backends: Mapping[str, Backend]) -> Api:
        path = f"apis[{i}]"
        allowed = ("name", "path", "backend", "policies", "policies-file")
        self.keys(m, path, allowed, required=("name", "path"))
        policies = self.policies(m, path, backends)
        backend = self.api_backend(m, path, backends, policies)
        lookup = policies.lookup
        return Api(
            name=self.string(m, "name", path),
            path=self.api_path(m, path),
            backend=backend,
            inbound=policies.inbound,
            outbound=policies.outbound,
            embeddings=backends[lookup.embeddings_backend_id] if lookup else None,
        )

    def api_backend(
        self, m: Map, path: str, backends: Mapping[str, Backend], policies: Policies
    ) -> Backend:
        """`backend:`, or the policies' `<set-backend-service>`; the two must agree."""
        named = self.string(m, "backend", path) if "backend" in m else None
        line = m.lines.get("backend", m.line)
        if named is not None and policies.backend_id not in (None, named):
            raise self.fail(
                f"{path}.backend",
                line,
                f"{named!r}, but the policies' <set-backend-service> names "
                f"{policies.backend_id!r}; keep one",
            )
        backend_id = named or policies.backend_id
        if backend_id is None:
            raise self.fail(path, m.line, "missing required key 'backend'")
        backend = backends.get(backend_id)
        if backend is None:
            known = ", ".join(backends)
            raise self.fail(
                f"{path}.backend", line, f"unknown backend {backend_id!r} (configured: {known})"
            )
        if backend.is_local:
            raise self.fail(
                f"{path}.backend",
                line,
                f"backend {backend_id!r} is the local embedding model, not an LLM",
            )
        parts = urlsplit(backend.url)
        if parts.query or parts.fragment:
            # The client's own path suffix and query are appended to the base URL.
            raise self.fail(
                f"{path}.backend",
                line,
                f"backend {backend_id!r} serves an API, so its url must not have a query",
            )
        if policies.forward_timeout is not None:
            return dataclasses.replace(backend, timeout=float(policies.forward_timeout))
        return backend

    def api_path(self, m: Map, path: str) -> str:
        value = self.string(m, "path", path)
        if value.rstrip("/") in RESERVED_PATHS:
            raise self.fail(
                f"{path}.path", m.lines["path"], f"{value!r} is the gateway's own endpoint"
            )
        if not value.startswith("/") or "?" in value or "#" in value:
            raise self.fail(
                f"{path}.path",
                m.lines["path"],
                f"must be a URL path starting with '/', not {value!r}",
            )
        return value.rstrip("/")

    def policies(self, m: Map, path: str, backends: Mapping[str, Backend]) -> Policies:
        if "policies" in m and "policies-file" in m:
            raise self.fail(
                f"{path}.policies-file",
                m.lines["policies-file"],
                "give policies or policies-file, not both",
            )
        if "policies-file" in m:
            file = self.base_dir / self.string(m, "policies-file", path)
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise self.fail(
                    f"{path}.policies-file",
                    m.lines["policies-file"],
                    f"cannot read {str(file)!r}: {exc.strerror}",
                ) from None
            return parse_policies(
                text, backends=backends, where=f"{self.source}: {path}.policies-file {str(file)!r}"
            )
        if "policies" not in m or m["policies"] is None:
            return Policies()
        text = m["policies"]
        if not isinstance(text, str):
            raise self.fail(
                f"{path}.policies", m.lines["policies"], "must be the policy XML as a string"
            )
        return parse_policies(
            text,
            backends=backends,
            where=f"{self.source}: {path}.policies",
            line_offset=m.lines["policies"] - 1,
        )


def redact(url: str) -> str:
    """`url` with any password replaced by `***`, for messages and output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
