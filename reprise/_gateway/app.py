"""The gateway as a plain ASGI app: APIM's semantic-cache pipeline in front of LLM backends.

    request ─► API by path prefix ─► subscription check ─► cached endpoint?
      no  ─► rate limits ─► proxied unchanged (body streamed both ways)     forwarder.py
      yes ─► inbound policies in order:
               lookup      HIT ─► cached answer at once (JSON, or replayed SSE); later
                                  policies (rate limits) do not run, nothing is stored
                           MISS / BYPASS / FAILED ─► next policy
               rate limit  over ─► 429 with Retry-After
             ─► backend ─► answer passed to the client as it arrives (SSE unbuffered)
             ─► outbound store, after the response, in a background task    outbound.py

This module routes and runs the policies; sending to the backend (timed, without
subscription keys) is `Forwarder`'s, writing answers to the cache `OutboundStores`'.

Plain ASGI rather than a framework: the hot path of a hit is a few dict
lookups and one store read, and the cost of a request object per call shows
in the exact-hit latency. Every lookup fails open: a store or embedder error,
or a lookup slower than the budget, sends the request to the backend with
`X-Cache-Status: FAILED`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reprise._exceptions import CacheError, LookupShed, RequestError
from reprise._gateway import sse
from reprise._gateway.admin import ADMIN_PATH, Admin
from reprise._gateway.asgi import (
    ClientGone,
    Exchange,
    Receive,
    Scope,
    Send,
    cache_control,
    credentials,
    header,
    parse_json,
    read_body,
    too_deep,
)
from reprise._gateway.caches import make_slots
from reprise._gateway.config import Api, GatewayConfig, Subscription
from reprise._gateway.errors import (
    JSON_HEADERS,
    GatewayError,
    error_body,
    from_request_error,
    not_found,
    rate_limited,
    unauthorized,
)
from reprise._gateway.expressions import RequestContext
from reprise._gateway.feedback import entry_not_found, mark_wrong, parse_feedback
from reprise._gateway.forwarder import Forwarder, relay
from reprise._gateway.ledger import Ledger, Noted
from reprise._gateway.metrics import CONTENT_TYPE, Metrics
from reprise._gateway.outbound import OutboundStores
from reprise._gateway.plan import LookupPlan, plan_lookup
from reprise._gateway.policies import (
    RateLimit,
    RateLimitByKey,
    SemanticCacheLookup,
    SemanticCacheStore,
)
from reprise._gateway.proxy import (
    Headers,
    UpstreamResponse,
    response_headers,
    upstream_url,
)
from reprise._gateway.singleflight import EarlyLock, Flight, SingleFlight, lock_for
from reprise._gateway.target import check_target
from reprise._gateway.trace import Trace, log_event, log_request, logs_requests, wants_trace
from reprise._plugins import make_rate_limiter
from reprise._protocols import Hit, Lookup, RateLimiter
from reprise._request import (
    Endpoint,
)
from reprise._stores.redis_client import RedisClients

logger = logging.getLogger("reprise.gateway")

SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")
_STARTUP_WAIT = 30.0  # seconds the first cache-open attempt may delay startup
_PROBES = frozenset({"/healthz", "/metrics"})
# Lookups whose request may wait for an identical one in flight: a miss, and a
# lookup that failed (under a burst, often shed for load: when it matters most).
_COALESCED = frozenset({"MISS", "FAILED"})


def create_app(
    config: GatewayConfig,
    *,
    limiter: RateLimiter | None = None,
    clock: Callable[[], float] = time.time,
) -> Gateway:
    """The gateway for `config`. Nothing is opened until the ASGI lifespan starts.

    `clock` is the Unix time cached entries expire by (tests advance one).
    """
    return Gateway(config, limiter=limiter, clock=clock)


@dataclass(slots=True)
class Caller:
    """Who is calling: their subscription, or a hash of their credential."""

    subscription: Subscription | None = None
    credential_hash: str = ""


class Gateway:
    """The ASGI app. Lifespan startup opens the upstream pool and the caches."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        # One Redis client (one pool) per URL for the caches and the rate limiter.
        self.redis_clients = RedisClients()
        self.slots = make_slots(config, self.redis_clients, clock)
        self.limiter = limiter or make_rate_limiter(
            config.cache.url, redis_clients=self.redis_clients
        )
        self.budget = config.cache.lookup_budget_ms / 1e3
        self.forwarder = Forwarder(config, self.metrics)
        self.stores = OutboundStores(self.metrics)
        self.ledger = Ledger(self.metrics, config.prices)
        self.admin = Admin(config, self.slots, self.ledger, self.metrics)
        self.flights = SingleFlight(lock_for(config.cache.url, redis_clients=self.redis_clients))
        self._openers: list[asyncio.Task[None]] = []

    # -- lifespan

    async def startup(self) -> None:
        self.forwarder.open()
        attempts = {
            name: asyncio.create_task(slot.open_once(), name=f"open-cache-{name}")
            for name, slot in self.slots.items()
        }
        if attempts:
            # Give each cache one attempt before serving, so that the first requests
            # can hit; a cache that is down is retried in the background meanwhile.
            await asyncio.wait(attempts.values(), timeout=_STARTUP_WAIT)
        for name, attempt in attempts.items():
            if attempt.done() and attempt.exception() is not None:
                await self.shutdown()  # a ConfigError, say: retrying would not help
                raise attempt.exception()  # type: ignore[misc]
            if not (attempt.done() and attempt.result()):
                opener = self.slots[name].keep_opening(attempt)
                self._openers.append(asyncio.create_task(opener, name=f"reopen-cache-{name}"))

    async def shutdown(self) -> None:
        for opener in self._openers:
            opener.cancel()
        await asyncio.gather(*self._openers, return_exceptions=True)
        await self.wait_for_stores()
        for slot in self.slots.values():
            await slot.aclose()
        await self.forwarder.aclose()
        await self.flights.aclose()
        close = getattr(self.limiter, "aclose", None)
        if close is not None:
            await close()
        await self.redis_clients.aclose()

    @property
    def pending_stores(self) -> int:
        """Stores still running after their responses went out."""
        return self.stores.under_way

    async def wait_for_stores(self) -> None:
        """Wait until the stores under way have finished, at most `outbound._DRAIN_WAIT` s."""
        await self.stores.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- one request

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        trace = Trace(wants_trace(header(scope, b"x-reprise-trace")))
        ex = Exchange(scope, send, trace)
        try:
            await self._route(ex, receive)
        except RequestError as exc:
            if not ex.started:
                await ex.error(from_request_error(exc))
        except ClientGone:
            ex.log["error"] = "client disconnected"
        except RecursionError:
            # A body parsed within the limit can still nest too deep for a later walk
            # over it (the partition's digest): the client's input, not our fault.
            if not ex.started:
                await ex.error(too_deep())
        except Exception:
            logger.exception("gateway error on %s %s", scope["method"], scope["path"])
            if not ex.started:
                await ex.error(GatewayError(500, "internal gateway error", type="server_error"))
        finally:
            self._finish(ex)

    async def _route(self, ex: Exchange, receive: Receive) -> None:
        path, method = ex.scope["path"], ex.scope["method"]
        check_target(path, method)
        if path == "/metrics" and method == "GET":
            await ex.respond(200, [(b"content-type", CONTENT_TYPE)], self.metrics.render())
            return
        if path == "/healthz" and method == "GET":
            caches = {name: slot.error or "open" for name, slot in self.slots.items()}
            health = {
                "status": "ok",
                "caches": caches,
                "pending_stores": self.pending_stores,
                "tasks": len(asyncio.all_tasks()),  # back to its idle count after load
            }
            await ex.respond(200, JSON_HEADERS, json.dumps(health).encode())
            return
        if path == "/reprise/feedback" and method == "POST":
            await self._feedback(ex, receive)
            return
        if path == ADMIN_PATH or path.startswith(ADMIN_PATH + "/"):
            await self.admin.handle(ex, receive)
            return
        match = self.config.match_api(path)
        if match is None:
            raise not_found(path)
        api, suffix = match
        ex.api = api
        cached = api.cached
        if cached:
            ex.cache_status = "BYPASS"  # until a lookup says otherwise; a 401 carries it too
        caller = self._authenticate(ex.scope)
        if caller.subscription is not None:
            ex.log["subscription"] = caller.subscription.id  # the id; never the key
        endpoint = _endpoint(method, suffix) if cached else None
        if endpoint is None:
            await self._passthrough(ex, receive, api, suffix, caller)
        else:
            await self._cached(ex, receive, api, suffix, endpoint, caller)

    async def _feedback(self, ex: Exchange, receive: Receive) -> None:
        """`{"entry_id", "path", "request", "correct": false}`: the entry served
        (`X-Cache-Entry`) for `request` sent to `path` was a wrong answer. Only an
        entry in the partition this caller's request would search is marked
        (`feedback.py`); any other is a 404, as for an entry that does not exist."""
        caller = self._authenticate(ex.scope)
        payload = parse_json(await read_body(receive, ex.scope, self.config.max_body_bytes))
        report = parse_feedback(payload)
        match = self.config.match_api(report.path)
        endpoint = _endpoint("POST", match[1]) if match and match[0].cached else None
        if match is None or endpoint is None:
            raise GatewayError(400, "'path' names no cached endpoint", param="path")
        if report.correct:  # limits only ever tighten
            await ex.respond(200, JSON_HEADERS, json.dumps({"marked": False}).encode())
            return
        api, suffix = match
        ctx = self._context(ex.scope, api, caller)
        for policy in (p for p in api.inbound if isinstance(p, SemanticCacheLookup)):
            # Planned with no Cache-Control: the partition the lookup searched.
            plan = self._plan_for(policy, suffix, endpoint, report.request, ctx, caller, ())
            prompt, partition = plan.prompt, plan.partition
            cache = self.slots[policy.embeddings_backend_id].cache
            try:
                caches = [] if cache is None else [cache]
                if await mark_wrong(caches, report.entry_id, prompt, partition=partition):
                    body = {"entry_id": report.entry_id, "marked": True}
                    await ex.respond(200, JSON_HEADERS, json.dumps(body).encode())
                    return
            except CacheError as exc:
                raise GatewayError(503, f"the cache failed: {type(exc).__name__}") from None
        raise entry_not_found(report.entry_id)

    def _authenticate(self, scope: Scope) -> Caller:
        """The caller; with subscriptions configured, an unknown key is a 401."""
        presented = credentials(scope)
        if self.config.subscriptions:
            for _, key in presented:
                subscription = self.config.subscription_for_key(key)
                if subscription is not None:
                    return Caller(subscription)
            raise unauthorized()
        # Partition by the credential the backend would see: the bearer token or api-key.
        credential = next((k for n, k in presented if n != b"ocp-apim-subscription-key"), "")
        digest = hashlib.sha256(credential.encode()).hexdigest()[:24] if credential else ""
        return Caller(credential_hash=digest)

    # -- cached endpoints

    async def _cached(
        self,
        ex: Exchange,
        receive: Receive,
        api: Api,
        suffix: str,
        endpoint: Endpoint,
        caller: Caller,
    ) -> None:
        body = await read_body(receive, ex.scope, self.config.max_body_bytes)
        payload = parse_json(body)
        stream = payload.get("stream") is True
        ex.log.update(endpoint=endpoint, stream=stream)
        plan: LookupPlan | None = None
        flight: Flight | None = None  # led by this request: finished whatever happens
        early: list[EarlyLock] = []  # single-flight locks being taken during a lookup
        ctx = self._context(ex.scope, api, caller)
        try:
            for policy in api.inbound:
                if isinstance(policy, SemanticCacheLookup):
                    plan = self._plan(ex, policy, suffix, endpoint, payload, ctx, caller)
                    plan, hit = await self._lookup(ex, plan, early)
                    if hit is None and flight is None and ex.cache_status in _COALESCED:
                        hit, flight = await self._coalesce(ex, api, plan)
                    if hit is not None and await self._serve_hit(
                        ex, hit, endpoint, payload, stream
                    ):
                        return
                elif isinstance(policy, RateLimit | RateLimitByKey):
                    await self._rate_limit(ex, policy, api, ctx, caller)
            await self._forward(ex, api, suffix, body, endpoint, stream, plan, flight)
        finally:
            for attempt in early:
                self.flights.done_early(attempt)
            if flight is not None and not flight.handed_over:
                flight.finish()  # failed, cancelled or not stored: followers go on alone

    def _context(self, scope: Scope, api: Api, caller: Caller) -> RequestContext:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        subscription = caller.subscription
        client = scope.get("client")
        return RequestContext(
            subscription_id=subscription.id if subscription else "",
            subscription_key=subscription.key if subscription else "",
            headers=headers,
            api_id=api.name,
            ip_address=client[0] if client else "",
        )

    def _plan(
        self,
        ex: Exchange,
        policy: SemanticCacheLookup,
        suffix: str,
        endpoint: Endpoint,
        payload: dict[str, Any],
        ctx: RequestContext,
        caller: Caller,
    ) -> LookupPlan:
        """The lookup policy's plan for this request, traced and noted for the ledger."""
        plan = self._plan_for(
            policy, suffix, endpoint, payload, ctx, caller, cache_control(ex.scope)
        )
        ex.noted = Noted(policy.embeddings_backend_id)
        ex.noted.partition, ex.noted.prompt = plan.partition, plan.prompt.question
        if ex.trace.enabled:
            ex.trace.add("partition", **plan.trace_fields())
        return plan

    def _plan_for(
        self,
        policy: SemanticCacheLookup,
        suffix: str,
        endpoint: Endpoint,
        payload: dict[str, Any],
        ctx: RequestContext,
        caller: Caller,
        directives: Iterable[str],
    ) -> LookupPlan:
        """`plan.plan_lookup` with this caller's vary-by values: the same partition
        for a lookup and for the feedback that reports its answer."""
        vary = policy.vary_by_values(ctx)
        if self.config.partition_by_credential:
            vary = (*vary, caller.credential_hash)
        deployment = _DEPLOYMENT.search(suffix)
        return plan_lookup(
            payload,
            endpoint,
            policy,
            self.slots[policy.embeddings_backend_id],
            vary_by=vary,
            model=deployment.group(1) if deployment else None,
            directives=directives,
        )

    async def _lookup(
        self, ex: Exchange, plan: LookupPlan, early: list[EarlyLock]
    ) -> tuple[LookupPlan, Hit | None]:
        """Run the plan's lookup; set the cache status. A failing cache voids the store.

        A single-flight lock it starts taking early is added to `early`.
        """
        if plan.bypass:
            self._lookup_done(ex, "BYPASS", plan.bypass)
            return plan, None
        found = await self._explain(ex, plan, early)
        if found is None:
            return plan.failed(), None
        if found.hit is None:
            self._lookup_done(ex, "MISS", found.reason)
            return plan, None
        ex.score, ex.entry = found.hit.score, found.hit.id
        self._lookup_done(ex, "HIT", found.reason, tier=found.hit.tier)
        return plan, found.hit

    async def _explain(
        self, ex: Exchange, plan: LookupPlan, early: list[EarlyLock]
    ) -> Lookup | None:
        """The cache's answer within the lookup budget, or None (and FAILED) if it has none."""
        slot, policy = plan.slot, plan.policy
        if slot.cache is None:
            self._lookup_done(ex, "FAILED", f"cache unavailable: {slot.error}")
            return None
        semantic = False

        def semantic_starts() -> None:
            # On Redis, the lock a miss will lead with is a round trip: taken meanwhile.
            nonlocal semantic
            semantic = True
            if self.flights.taking_early and self._coalescing(ex):
                attempt = self.flights.early(plan.exact_key)
                if attempt is not None:
                    early.append(attempt)

        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.budget):
                found = await slot.cache.explain(
                    plan.prompt,
                    plan.partition,
                    threshold=policy.score_threshold,
                    target_precision=policy.target_precision,
                    gate=slot.gate,
                    on_semantic=semantic_starts if self.flights.lock is not None else None,
                )
        except TimeoutError:
            reason = f"lookup budget of {self.budget * 1e3:.0f} ms exceeded"
        except CacheError as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            if isinstance(exc, LookupShed):
                assert ex.api is not None
                self.metrics.count(self.metrics.lookups_shed, ex.api.name)
        except Exception as exc:
            # A bug in the cache must cost a cache miss, never the request.
            logger.exception("cache lookup crashed; failing open")
            reason = f"internal error: {type(exc).__name__}"
        else:
            reason = ""
        elapsed = time.perf_counter() - start
        ex.log["lookup_ms"] = round(elapsed * 1e3, 3)
        assert ex.api is not None
        self.metrics.observe(self.metrics.lookup_seconds, elapsed, ex.api.name)
        if reason:
            self._lookup_done(ex, "FAILED", reason)
            return None
        if semantic:
            self.flights.note(missed=found.hit is None)
        if not ex.trace.enabled:
            return found
        ex.trace.add(
            "lookup",
            threshold=policy.score_threshold,
            target_precision=policy.target_precision,
            best_score=found.best_distance,
            candidates=found.candidates,
            embed_ms=round(found.embed_ms, 3),
            search_ms=round(found.search_ms, 3),
            verify_ms=round(found.verify_ms, 3),
        )
        return found

    def _lookup_done(self, ex: Exchange, status: str, reason: str, **fields: Any) -> None:
        ex.cache_status = status
        ex.trace.add("decision", status=status, reason=reason, **fields)
        if status == "FAILED":
            ex.log["cache_error"] = reason
        assert ex.api is not None
        assert ex.noted is not None
        self.metrics.count(self.metrics.lookups, ex.api.name, status)
        ex.noted.reason = reason
        self.ledger.lookup(ex.api.name, ex.noted.cache, ex.noted.partition, status)

    async def _coalesce(
        self, ex: Exchange, api: Api, plan: LookupPlan
    ) -> tuple[Hit | None, Flight | None]:
        """After a miss: the answer of an identical request in flight (served as a hit),
        or a flight for this request to lead, or neither (see `singleflight`)."""
        cache = plan.slot.cache
        prompt, partition = plan.prompt, plan.partition
        if not self._coalescing(ex):
            return None, None
        key = plan.exact_key  # the same question, context and partition

        async def exact() -> str | None:
            if cache is None:
                return None
            try:
                found = await cache.explain(prompt, partition, threshold=0.0)
            except CacheError:
                return None  # failing open: the follower goes to the backend
            return found.hit.response if found.hit is not None else None

        outcome = await self.flights.enter(key, api.backend.timeout, exact)
        if isinstance(outcome, Flight):
            return None, outcome
        served = outcome is not None
        ex.trace.add("coalesced", outcome="served" if served else "backend")
        self.metrics.count(self.metrics.coalesced, api.name, "served" if served else "backend")
        if outcome is None:
            return None, None
        ex.cache_status, ex.score, ex.entry, ex.coalesced = "HIT", 0.0, key, True
        return Hit(key, prompt.question, outcome, 0.0, "exact"), None

    @staticmethod
    def _coalescing(ex: Exchange) -> bool:
        """Whether a miss of this request may lead or follow a flight (it will be stored)."""
        assert ex.api is not None
        return ex.api.store is not None and "no-store" not in cache_control(ex.scope)

    async def _serve_hit(
        self, ex: Exchange, hit: Hit, endpoint: Endpoint, payload: dict[str, Any], stream: bool
    ) -> bool:
        if not stream:
            await ex.respond(200, JSON_HEADERS, hit.response.encode())
            self._saved(ex, hit)
            return True
        try:
            cached = json.loads(hit.response)
        except ValueError:
            log_event("cache_entry_unreadable", entry=hit.id, action="treated as a miss")
            ex.cache_status, ex.score = "MISS", None
            return False
        options = payload.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        await ex.respond(200, SSE_HEADERS, sse.replay(endpoint, cached, include_usage=usage))
        self._saved(ex, hit)
        return True

    def _saved(self, ex: Exchange, hit: Hit) -> None:
        assert ex.api is not None
        assert ex.noted is not None
        self.ledger.hit(ex.api.name, ex.noted.cache, ex.noted.partition, hit.meta)

    async def _rate_limit(
        self,
        ex: Exchange,
        policy: RateLimit | RateLimitByKey,
        api: Api,
        ctx: RequestContext,
        caller: Caller,
    ) -> None:
        if isinstance(policy, RateLimit):
            who = ctx.subscription_id or caller.credential_hash or ctx.ip_address
            key, count = f"rate-limit\x00{api.name}\x00{who}", 1
        else:
            who = policy.counter_key.evaluate(ctx)
            key, count = f"rate-limit-by-key\x00{api.name}\x00{who}", policy.increment_count
        allowed, retry_after = True, 0.0
        for _ in range(count):
            allowed, retry_after = await self.limiter.hit(key, policy.calls, policy.renewal_period)
        ex.trace.add(
            "rate-limit", allowed=allowed, calls=policy.calls, period=policy.renewal_period
        )
        if not allowed:
            self.metrics.count(self.metrics.rate_limited, api.name)
            raise rate_limited(retry_after, header=policy.retry_after_header_name)

    async def _forward(
        self,
        ex: Exchange,
        api: Api,
        suffix: str,
        body: bytes,
        endpoint: Endpoint,
        stream: bool,
        plan: LookupPlan | None,
        flight: Flight | None = None,
    ) -> None:
        url = upstream_url(api.backend.url, suffix, ex.scope["query_string"])
        headers = self.forwarder.headers(ex.scope, api, identity=True)
        response = await self.forwarder.send(ex, api, url, headers, body)
        # A leader whose cache failed still hands its answer to its followers.
        keep = plan is not None and (plan.may_store or flight is not None)
        store = api.store if keep else None
        try:
            content_type = response.content_type
            if (
                stream
                and response.status_code == 200
                and content_type.startswith("text/event-stream")
            ):
                await self._relay(ex, response, endpoint, plan, store, flight)
                return
            content = await response.aread()
            headers = response_headers(response.headers, keep_length=False)
            if response.status_code >= 400 and not content_type.startswith("application/json"):
                # An HTML page from a proxy in front of the backend: give SDKs OpenAI's shape.
                content = error_body(
                    f"the backend answered {response.status_code}", type="server_error"
                )
                headers = [
                    (k, v) for k, v in headers if k.lower() != b"content-type"
                ] + JSON_HEADERS
            self.stores.schedule(
                ex,
                store,
                plan,
                endpoint,
                response.status_code,
                content,
                streamed=False,
                flight=flight,
            )
            await ex.respond(response.status_code, headers, content)
        finally:
            await response.aclose()

    async def _relay(
        self,
        ex: Exchange,
        response: UpstreamResponse,
        endpoint: Endpoint,
        plan: LookupPlan | None,
        store: SemanticCacheStore | None,
        flight: Flight | None,
    ) -> None:
        """Pass a backend stream on as it arrives, keeping a copy if it may be stored."""
        ex.trace.add("store", status="after the stream completes" if store else "off")
        await ex.start(200, response_headers(response.headers, keep_length=False))
        copy: list[bytes] | None = [] if store is not None else None
        if not await relay(ex, response, copy=copy, sse=True):
            return
        if copy is not None:
            # Scheduled before the stream's end goes out, so that a client that has
            # seen the end can count on the store being under way (see /healthz).
            content = b"".join(copy)
            self.stores.schedule(
                ex, store, plan, endpoint, 200, content, streamed=True, flight=flight
            )
        await ex.body(b"", more=False)

    # -- everything else under an API

    async def _passthrough(
        self, ex: Exchange, receive: Receive, api: Api, suffix: str, caller: Caller
    ) -> None:
        # An API's inbound policies run for every operation, as in APIM: the rate
        # limits cover the proxied paths too; a lookup has nothing to look up here.
        limits = [p for p in api.inbound if isinstance(p, RateLimit | RateLimitByKey)]
        if limits:
            ctx = self._context(ex.scope, api, caller)
            for policy in limits:
                await self._rate_limit(ex, policy, api, ctx, caller)
        await self.forwarder.passthrough(ex, receive, api, suffix)

    # -- after the response

    def _finish(self, ex: Exchange) -> None:
        if ex.api is None and ex.scope["path"] in _PROBES and ex.status == 200:
            return  # probes every few seconds would drown the request log
        api = ex.api.name if ex.api is not None else ""
        status = ex.status or 499
        cache_status = ex.cache_status or ""
        elapsed = ex.trace.elapsed_ms()
        self.metrics.count(self.metrics.requests, api, cache_status, str(status))
        if ex.api is not None:
            self.metrics.observe(self.metrics.request_seconds, elapsed / 1e3, api, cache_status)
        if ex.noted is not None:
            self.ledger.finished(ex, cache_status, status, elapsed)
        if not logs_requests():
            return
        record: dict[str, Any] = {
            "event": "request",
            "method": ex.scope["method"],
            "path": ex.scope["path"],
            "api": api,
            "status": status,
            "cache": cache_status or None,
            "score": ex.score,
            "ms": round(elapsed, 3),
            **ex.log,
        }
        log_request(record)


# --- helpers ----------------------------------------------------------------------------


def _endpoint(method: str, suffix: str) -> Endpoint | None:
    """The cached endpoint a request is for, or None for everything proxied as is."""
    if method != "POST":
        return None
    path = suffix.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/completions"):
        return "completions"
    if path.endswith("/responses"):
        return "responses"
    return None
