"""The per-request trace (APIM's test-console trace) and the one log line per request.

A client sends `X-Reprise-Trace: true` and gets back an `X-Reprise-Trace`
response header: a JSON array of the policy steps in the order they ran, each
with its time since the request arrived. A header works for streamed answers
too, where a body field could not; steps that happen after the headers have
gone (the store of a streamed answer) are in the log line instead.

Neither ever carries a secret: partitions are hashes, and credentials, keys
and prompts are not recorded.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

TRACE_HEADER = b"x-reprise-trace"
# `json.dumps(steps, separators=...)` with the encoder made once, not per response.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode

logger = logging.getLogger("reprise.gateway")


class Trace:
    """The steps of one request; recording is a no-op unless the client asked."""

    __slots__ = ("enabled", "start", "steps")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()
        self.steps: list[dict[str, Any]] = []

    def add(self, step: str, **fields: Any) -> None:
        if self.enabled:
            at_ms = round((time.perf_counter() - self.start) * 1e3, 3)
            self.steps.append({"step": step, "at_ms": at_ms, **fields})

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1e3

    def header(self) -> list[tuple[bytes, bytes]]:
        """The response header carrying the trace, or none if not asked for."""
        if not self.enabled:
            return []
        return [(TRACE_HEADER, _ENCODE(self.steps).encode())]


def wants_trace(value: bytes | None) -> bool:
    return value is not None and value.strip().lower() in (b"true", b"1", b"yes")


def logs_requests() -> bool:
    """Whether request lines are written (INFO): if not, there is no record to build."""
    return logger.isEnabledFor(logging.INFO)


def log_request(record: dict[str, Any]) -> None:
    """Write the request's one structured log line."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps(record, separators=(",", ":"), default=str))


def log_event(event: str, level: int = logging.WARNING, **fields: Any) -> None:
    """A JSON log line about the gateway itself (a cache opening, a store failing)."""
    if logger.isEnabledFor(level):
        record = {"event": event, **fields}
        logger.log(level, json.dumps(record, separators=(",", ":"), default=str))
