"""The reprise commands' thread settings."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json
from reprise._threads import settle_threads
settle_threads()
from threadpoolctl import threadpool_info
print(json.dumps([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]))
"""


def test_numpys_blas_runs_on_one_thread_once_settled() -> None:
    # A fresh process that has not imported numpy yet, as `reprise` commands start.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    threads = json.loads(done.stdout)
    assert threads
    assert all(n == 1 for n in threads)
