"""Load the system libstdc++ globally, before usearch or onnxruntime is imported.

usearch's extension links libstdc++ statically, and its GNU-unique symbols
(locale facet ids) then take over the process: onnxruntime, imported after it,
segfaults in std::codecvt at load. With the system libstdc++ loaded globally
first, its symbols are the ones both extensions bind to, and they may be imported
in either order. So every module that imports one of them imports this module
first (`_stores/_index.py`, `_embedders/local.py`); loading happens once, on
first import.
"""

from __future__ import annotations

import ctypes
import sys


def _load_system_libstdcxx() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)
        except OSError:  # no system libstdc++ (musl, static builds): nothing to clash with
            return


_load_system_libstdcxx()
