"""Thread pools that do not fight over the cores: set once, when a Reprise command starts.

The model runs on ONNX Runtime's own threads (`LocalEmbedder(threads=...)`) and the
event loop needs a core between its calls. numpy's BLAS (OpenBLAS) would start a
pool of its own for every product, but the verifier's and the search's products
are a few dozen rows: split over two threads that share the cores with ORT and the
loop, the interaction head's score took 65-150 ms at p50 instead of 0.8-1.0 ms on
one thread (benchmarks/gateway.md). A library does not change its host's thread
pools; the `reprise` commands, whose process it is, do (`reprise._cli.main`).
"""

from __future__ import annotations


def settle_threads() -> None:
    """numpy's BLAS on one thread, for the rest of the process."""
    import numpy  # noqa: F401 - loads the BLAS, so that there is a pool to limit
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
