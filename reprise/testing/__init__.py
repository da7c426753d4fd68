"""Test support shared by the tests, the benchmarks and the demo.

- `FakeUpstream`: a fake OpenAI / Azure OpenAI backend (an ASGI app; markers in the
  prompt make it fail, stall or cut a stream; it counts the calls per prompt).
- `FakeUpstreamServer`, `GatewayServer`, `ValkeyServer`: the fake upstream,
  `reprise serve` and a Valkey with RediSearch as child processes on free ports.
- `free_port()`: a port nothing listens on.
- `ManualClock`: a clock a test advances past a TTL instead of sleeping.
- `reprise.testing.configs`: YAML of the test gateways' APIs and lookup policies.
- `reprise.testing.fuzz` (imported on its own: it needs `hypothesis`, a dev
  dependency): the HTTP fuzzing of the CI test and of `benchmarks/fuzz.py`.

It ships in the package because `reprise demo` and `reprise bench` run these at run
time; the pytest fixtures built on them live in `tests/`.
"""

from __future__ import annotations

from reprise.testing.clock import ManualClock
from reprise.testing.servers import (
    FakeUpstreamServer,
    GatewayServer,
    Server,
    ValkeyServer,
    free_port,
)
from reprise.testing.upstream import FakeUpstream, default_answer

__all__ = [
    "FakeUpstream",
    "FakeUpstreamServer",
    "GatewayServer",
    "ManualClock",
    "Server",
    "ValkeyServer",
    "default_answer",
    "free_port",
]
