"""Fuzzing the gateway's HTTP surface: hypothesis strategies, a harness, the invariants.

Used by `tests/app/test_fuzz.py` (a bounded number of examples in CI) and
`benchmarks/fuzz.py` (>= 10,000, with a report). It needs `hypothesis`, a dev
dependency, so `reprise.testing` does not import it. The gateway runs in-process
on an event loop of its own in a thread, over `httpx.ASGITransport`, with a
real embedded store, the local model and the fake upstream process; each case
is one request, sent and checked against:

- no 5xx unless the backend sent it (the fake upstream marks its responses
  `x-fake-upstream: true`);
- every 4xx the gateway makes itself is OpenAI's error JSON shape;
- an answer within `CASE_TIMEOUT` seconds (no hang), and no exception out of the app.

`consistency_problems` then checks the cache: an entry stored before the
fuzzing is still served, unchanged, a new miss is stored and served, and no
store is left pending.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st

from reprise._gateway.app import Gateway, create_app
from reprise._gateway.config import parse_config
from reprise.testing.configs import app_config_yaml

CASE_TIMEOUT = 20.0  # seconds for one request, far above any legitimate answer here
KNOWN_PROMPT = "What colour is the sky on a clear day? (known before fuzzing)"

# -- the requests

APIS = ("/chat", "/plain", "/keep-system", "/rl", "/sub", "/ttl")
CACHED_SUFFIXES = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
SEGMENTS = (
    "v1", "chat", "completions", "responses", "models", "embeddings", "..", ".", "%2e%2e",
    "%2E%2e", "%2f", "%2F..%2F", "%00", "%ff", "%C3%A9", "é", "~", "reprise", "feedback",
    "metrics", "healthz", "openai", "deployments", "gpt-4o", "", "%20", "a%3Fb", ";x=1",
)  # fmt: skip
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")
HEADER_NAMES = (
    "authorization", "api-key", "ocp-apim-subscription-key", "cache-control",
    "x-reprise-trace", "content-type", "accept-encoding", "x-team", "accept", "user-agent",
    "x-forwarded-for", "cookie", "origin", "x-ms-region", "te", "connection", "expect",
)  # fmt: skip


@dataclass
class Case:
    """One request to send, and the category it was made for."""

    category: str
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[int] | None = None  # split the body into these sizes, sent chunked

    def __repr__(self) -> str:  # hypothesis prints failing cases: keep it short
        return self.describe()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.describe())

    def describe(self) -> str:
        body = self.body[:300]
        return (
            f"{self.method} {self.path} headers={self.headers[:8]} "
            f"body[{len(self.body)}]={body!r}" + (f" chunks={self.chunks}" if self.chunks else "")
        )


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_leaves,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids, max_size=5)
    ),
    max_leaves=25,
)
credentials = st.sampled_from(
    [
        [("authorization", "Bearer client-key-1")],
        [("api-key", "client-key-2")],
        [("authorization", "Bearer a"), ("authorization", "Bearer b")],
        [("api-key", "x"), ("authorization", "Bearer y"), ("ocp-apim-subscription-key", "z")],
        [("authorization", "Basic dXNlcjpwYXNz")],
        [("authorization", "Bearer ")],
        [],
    ]
)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@st.composite
def messages(draw: st.DrawFn) -> Any:
    roles = st.sampled_from(["user", "system", "assistant", "developer", "tool", ""]) | json_values
    content = (
        st.text(max_size=60)
        | json_values
        | st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url", "input_audio", "x"])},
                optional={"text": json_values, "image_url": json_values},
            ),
            max_size=3,
        )
    )
    message = st.fixed_dictionaries(
        {},
        optional={
            "role": roles,
            "content": content,
            "tool_calls": json_values,
            "name": json_values,
        },
    )
    return draw(st.lists(message, max_size=4) | json_values)


@st.composite
def chat_shaped(draw: st.DrawFn) -> Case:
    """Bodies shaped like OpenAI requests, with wrong types wherever hypothesis likes."""
    fields = {
        "model": st.sampled_from(["gpt-4o", ""]) | json_values,
        "messages": messages(),
        "prompt": st.text(max_size=40) | json_values,
        "input": st.text(max_size=40) | messages(),
        "instructions": st.text(max_size=20) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.just({"include_usage": True}) | json_values,
        "temperature": st.floats(allow_nan=True) | json_values,
        "n": st.integers() | json_values,
        "tools": json_values,
        "user": json_values,
    }
    body = draw(st.fixed_dictionaries({}, optional=fields))
    path = draw(st.sampled_from(APIS)) + draw(st.sampled_from(CACHED_SUFFIXES))
    return Case("chat-shaped, wrong types", "POST", path, draw(credentials), _json(body))


@st.composite
def random_json(draw: st.DrawFn) -> Case:
    path = draw(st.sampled_from(APIS)) + draw(st.sampled_from(CACHED_SUFFIXES))
    body = draw(json_values | st.dictionaries(st.text(max_size=12), json_values, max_size=8))
    return Case("random JSON bodies", "POST", path, draw(credentials), _json(body))


@st.composite
def huge_or_nested(draw: st.DrawFn) -> Case:
    depth = draw(st.integers(min_value=10, max_value=100_000))
    kind = draw(st.sampled_from(["array", "object", "string", "messages", "content-list"]))
    if kind == "array":
        body = b'{"model":"m","messages":' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "object":
        body = b'{"model":"m","messages":[{"role":"user","content":' + b'{"a":' * depth
        body += b"1" + b"}" * depth + b"}]}"
    elif kind == "string":
        body = _json({"model": "m", "messages": [{"role": "user", "content": "w " * depth}]})
    elif kind == "messages":
        turn = {"role": "user", "content": "hi"}
        body = _json({"model": "m", "messages": [turn] * min(depth, 20_000)})
    else:
        parts = [{"type": "text", "text": "x"}] * min(depth, 20_000)
        body = _json({"model": "m", "messages": [{"role": "user", "content": parts}]})
    path = draw(st.sampled_from(APIS)) + draw(st.sampled_from(CACHED_SUFFIXES))
    return Case("huge and deeply nested", "POST", path, draw(credentials), body)


@st.composite
def bad_bytes(draw: st.DrawFn) -> Case:
    """Invalid UTF-8, lone surrogates, NULs, BOMs, inside and outside JSON strings."""
    junk = draw(st.binary(max_size=200))
    text = draw(st.text(max_size=30))
    bodies = [
        junk,
        b'{"model":"m","messages":[{"role":"user","content":"' + junk + b'"}]}',
        b'{"model":"m","messages":[{"role":"user","content":"\\ud800' + text.encode() + b'"}]}',
        b"\xef\xbb\xbf" + _json({"model": "m", "messages": [{"role": "user", "content": text}]}),
        _json({"model": "m", "messages": [{"role": "user", "content": text}]}).replace(b"m", junk),
        b'{"model":"m","model":"n","messages":[{"role":"user","content":"dup keys"}]}',
        b'{"messages":[{"role":"user","content":"' + b"\\u0000" * 5 + b'"}]}',
    ]
    body = draw(st.sampled_from(bodies))
    path = draw(st.sampled_from(APIS)) + draw(st.sampled_from(CACHED_SUFFIXES))
    return Case("invalid UTF-8 and odd bytes", "POST", path, draw(credentials), body)


header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)


@st.composite
def odd_headers(draw: st.DrawFn) -> Case:
    names = st.sampled_from(HEADER_NAMES) | st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z")
    headers = draw(st.lists(st.tuples(names, header_values), max_size=8))
    headers += draw(credentials)
    body = _json({"model": "gpt-4o", "messages": [{"role": "user", "content": draw(st.text())}]})
    path = draw(st.sampled_from(APIS)) + draw(st.sampled_from((*CACHED_SUFFIXES, "/v1/models")))
    return Case(
        "odd and duplicate headers", draw(st.sampled_from(["POST", "GET"])), path, headers, body
    )


@st.composite
def methods_and_paths(draw: st.DrawFn) -> Case:
    method = draw(st.sampled_from(METHODS) | st.from_regex(r"\A[A-Z]{1,10}\Z"))
    prefix = draw(st.sampled_from(("", *APIS, "/reprise", "/metrics", "/healthz")))
    segments = draw(st.lists(st.sampled_from(SEGMENTS), max_size=6))
    path = prefix + "/" + "/".join(segments)
    if draw(st.booleans()):
        path += "?" + draw(
            st.sampled_from(["api-version=2024-02-01", "a=%ff", "x", "&&=", "q=..%2F"])
        )
    body = draw(
        st.sampled_from([b"", b"{}", _json({"model": "m", "messages": [{"content": "x"}]})])
    )
    return Case("methods and paths", method, path, draw(credentials), body)


@st.composite
def chunked(draw: st.DrawFn) -> Case:
    body = draw(
        st.sampled_from(
            [
                _json({"model": "m", "messages": [{"role": "user", "content": draw(st.text())}]}),
                _json(draw(json_values)),
                b'{"model": "m", "messages": [',
                b"x" * 70_000,
            ]
        )
    )
    sizes = draw(st.lists(st.integers(min_value=0, max_value=max(1, len(body))), max_size=6))
    api = draw(st.sampled_from(APIS))
    path = api + draw(st.sampled_from((*CACHED_SUFFIXES, "/v1/embeddings", "/v1/files")))
    return Case("chunked bodies", "POST", path, draw(credentials), body, chunks=sizes)


@st.composite
def feedback(draw: st.DrawFn) -> Case:
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "entry_id": st.text(max_size=40) | json_values,
            "path": st.sampled_from(["/chat/v1/chat/completions", "/plain/v1/x", "/nowhere"])
            | json_values,
            "request": st.just({"model": "m", "messages": [{"role": "user", "content": "x"}]})
            | json_values,
            "correct": st.booleans() | json_values,
            "prompt": json_values,
        },
    )
    body = draw(shaped | json_values)
    method = draw(st.sampled_from(["POST", "POST", "GET", "PUT"]))
    return Case("feedback endpoint", method, "/reprise/feedback", draw(credentials), _json(body))


CATEGORIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "random JSON bodies": random_json,
    "chat-shaped, wrong types": chat_shaped,
    "huge and deeply nested": huge_or_nested,
    "invalid UTF-8 and odd bytes": bad_bytes,
    "odd and duplicate headers": odd_headers,
    "methods and paths": methods_and_paths,
    "chunked bodies": chunked,
    "feedback endpoint": feedback,
}


# -- the harness


def fuzz_config(upstream: str) -> str:
    """The app tests' gateway, its entries kept for a day: a run takes minutes, and the
    entry stored before it must still be there after it."""
    config = app_config_yaml(upstream)
    assert 'duration="60"' in config
    return config.replace('duration="60"', 'duration="86400"')


def fuzz_gateway(upstream: str) -> ThreadedGateway:
    """The gateway of `fuzz_config`, started on a loop of its own."""
    return ThreadedGateway(create_app(parse_config(fuzz_config(upstream)))).start()


class ThreadedGateway:
    """The app on an event loop of its own, in a thread; `send` runs one case there."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._client: httpx.AsyncClient | None = None

    def start(self) -> ThreadedGateway:
        self._thread.start()
        self.run(self._start(), timeout=120)
        return self

    async def _start(self) -> None:
        await self.app.startup()
        transport = httpx.ASGITransport(app=self.app, client=("10.9.8.7", 5000))
        self._client = httpx.AsyncClient(transport=transport, base_url="http://gateway")

    def run(self, coro: Any, timeout: float = CASE_TIMEOUT) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def send(self, case: Case) -> httpx.Response:
        assert self._client is not None
        content: bytes | AsyncIterator[bytes] = case.body
        if case.chunks is not None:
            content = _chunks(case.body, case.chunks)
        request = self._client.build_request(
            case.method, case.path, headers=case.headers, content=content
        )
        return self.run(self._client.send(request))  # type: ignore[no-any-return]

    def close(self) -> None:
        async def stop() -> None:
            if self._client is not None:
                await self._client.aclose()
            await self.app.shutdown()

        self.run(stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _chunks(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    at = 0
    for size in sizes:
        yield body[at : at + size]
        at += size
    yield body[at:]


@dataclass
class Outcome:
    status: int | None
    problems: list[str] = field(default_factory=list)
    sendable: bool = True


def run_case(gateway: ThreadedGateway, case: Case) -> Outcome:
    """Send one case and check the invariants; problems name what broke."""
    try:
        response = gateway.send(case)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError, UnicodeError):
        return Outcome(None, sendable=False)  # the client refuses to send it: nothing to test
    except (TimeoutError, FutureTimeout):
        return Outcome(None, [f"no answer within {CASE_TIMEOUT} s"])
    except Exception as exc:  # the app raised out of ASGI, or sent no response
        return Outcome(None, [f"the app raised {type(exc).__name__}: {str(exc)[:200]}"])
    return Outcome(response.status_code, invariant_problems(case, response))


def invariant_problems(case: Case, response: httpx.Response) -> list[str]:
    status = response.status_code
    from_backend = response.headers.get("x-fake-upstream") == "true"
    problems = []
    if status >= 500 and not from_backend:
        problems.append(f"the gateway answered {status}: {response.text[:200]}")
    shaped = case.method == "HEAD" or _openai_error(response.content)  # HEAD has no body
    if 400 <= status < 500 and not from_backend and not shaped:
        problems.append(f"a {status} not in OpenAI's error shape: {response.text[:200]}")
    return problems


def _openai_error(content: bytes) -> bool:
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and bool(error["message"])
        and {"type", "param", "code"} <= error.keys()
    )


# -- the cache afterwards

_KEY = [("authorization", "Bearer client-key-1")]


def chat_case(prompt: str) -> Case:
    body = _json({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})
    return Case("consistency", "POST", "/chat/v1/chat/completions", _KEY, body)


def seed_known_entry(gateway: ThreadedGateway) -> str:
    """Store the known entry; return its answer."""
    first = gateway.send(chat_case(KNOWN_PROMPT))
    assert first.status_code == 200, first.text
    gateway.run(gateway.app.wait_for_stores())
    return str(first.json()["choices"][0]["message"]["content"])


def consistency_problems(gateway: ThreadedGateway, known_answer: str, fresh: str) -> list[str]:
    """After fuzzing: the known entry still served unchanged, a fresh miss stored and served."""
    problems = []
    gateway.run(gateway.app.wait_for_stores())
    if gateway.app.pending_stores:
        problems.append(f"{gateway.app.pending_stores} stores still pending")
    known = gateway.send(chat_case(KNOWN_PROMPT))
    if known.headers.get("x-cache-status") != "HIT":
        problems.append(f"the known entry is no longer served: {known.headers}")
    elif known.json()["choices"][0]["message"]["content"] != known_answer:
        problems.append("the known entry's answer changed")
    miss = gateway.send(chat_case(fresh))
    gateway.run(gateway.app.wait_for_stores())
    hit = gateway.send(chat_case(fresh))
    statuses = (miss.headers.get("x-cache-status"), hit.headers.get("x-cache-status"))
    if statuses != ("MISS", "HIT") or miss.content != hit.content:
        problems.append(f"a fresh miss was not stored and served: {statuses}")
    health = gateway.send(Case("consistency", "GET", "/healthz", [], b""))
    if health.status_code != 200 or health.json()["status"] != "ok":
        problems.append(f"/healthz: {health.status_code} {health.text[:200]}")
    return problems
