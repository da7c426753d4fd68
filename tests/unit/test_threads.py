"""The reprise commands' thread settings."""

from __future__ import annotations

import numpy as np  # noqa: F401 - loads the BLAS whose pool is limited
from threadpoolctl import threadpool_info, threadpool_limits

from reprise._threads import settle_threads


def test_numpys_blas_runs_on_one_thread_once_settled() -> None:
    with threadpool_limits(limits=None):  # puts the test process's pools back afterwards
        settle_threads()
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas
        assert all(pool["num_threads"] == 1 for pool in blas)
