"""Markdown tables and a description of the machine, for benchmark outputs."""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from reprise._bench.stats import Estimate


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.{digits}f}%"


def num(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def interval(est: Estimate, *, percent: bool = False) -> str:
    """`0.812 [0.80, 0.83]` (or in percent): the estimate and its 95% interval."""
    if math.isnan(est.value):
        return "-"
    if percent:
        return f"{100 * est.value:.1f}% [{100 * est.low:.1f}, {100 * est.high:.1f}]"
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"


def machine() -> dict[str, Any]:
    """CPU model, cores, OS, Python, and the versions of the libraries that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass  # not Linux: keep platform's answer
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in _PACKAGES},
    }


_PACKAGES = ("reprise", "numpy", "onnxruntime", "usearch", "starlette", "uvicorn", "httpx", "redis")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_line(info: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v != "-")
    return f"{info['cpu']}, {info['cores']} cores, Python {info['python']}; {versions}"
