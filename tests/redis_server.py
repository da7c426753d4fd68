"""Redis fixtures: a Valkey with RediSearch from the dev wheels (`reprise.testing.ValkeyServer`).

With `REDIS_URL` set, `redis_url` uses that server instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from reprise.testing import ValkeyServer


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis with RediSearch for the whole session: `REDIS_URL`, or a Valkey of our own."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with ValkeyServer() as server:
        yield server.url


@pytest.fixture
def restartable_redis() -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, on a fixed port, that the test may kill and start again."""
    with ValkeyServer() as server:
        yield server
