"""`import reprise` is cheap, and each backend's native libraries load only when chosen.

Each check runs in a fresh interpreter, since this one has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import reprise

NATIVE = ("onnxruntime", "usearch")
DEV_ONLY = (
    "reprise._bench",
    "reprise._demo",
    "reprise._embedders.export",
    "reprise.testing",
    "tqdm",
    "matplotlib",
    "torch",
)


def loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """The `watched` modules that `code`, run in a fresh interpreter, has imported."""
    loaded = f"sorted(m for m in {watched!r} if m in sys.modules)"
    report = f"import json, sys\nprint(json.dumps({loaded}))\n"
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + report],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_reprise_loads_no_backend() -> None:
    watched = (*NATIVE, "numpy", "httpx", "aiohttp", "redis", "starlette", *DEV_ONLY)
    assert loaded_after("import reprise", watched) == []


def test_a_redis_and_remote_embedder_cache_loads_neither_onnxruntime_nor_usearch() -> None:
    code = (
        "import reprise\n"
        "embedder = reprise.RemoteEmbedder('http://127.0.0.1:9/v1/embeddings', dims=384)\n"
        "cache = reprise.SemanticCache(store='redis://127.0.0.1:9/0', embedder=embedder)\n"
        "assert type(cache.vector_store).__name__ == 'RedisStore'\n"
    )
    assert loaded_after(code, (*NATIVE, *DEV_ONLY)) == []


def test_the_serving_path_imports_no_dev_tooling() -> None:
    code = (
        "from reprise._gateway.app import create_app\n"
        "from reprise._gateway.config import parse_config\n"
        "import reprise._gateway.serve\n"
        "create_app(parse_config('''\n"
        "backends:\n"
        "  chat: { url: 'http://127.0.0.1:9/v1' }\n"
        "  embed: { url: 'http://127.0.0.1:9/v1/embeddings' }\n"
        "cache: { url: 'redis://127.0.0.1:9/0' }\n"
        "apis:\n"
        "  - name: chat\n"
        "    path: /chat\n"
        "    backend: chat\n"
        "    policies: |\n"
        "      <policies><inbound><llm-semantic-cache-lookup score-threshold='0.1'\n"
        "          embeddings-backend-id='embed' /></inbound>\n"
        "        <outbound><llm-semantic-cache-store duration='60' /></outbound></policies>\n"
        "'''))\n"
    )
    assert loaded_after(code, DEV_ONLY) == []


@pytest.mark.parametrize("first", ["usearch.index", "onnxruntime"])
def test_usearch_and_onnxruntime_load_in_either_order_after_the_preload(first: str) -> None:
    second = "onnxruntime" if first == "usearch.index" else "usearch.index"
    code = f"import reprise._native\nimport {first}\nimport {second}\n"
    assert loaded_after(code, NATIVE) == list(NATIVE)


def test_public_names_resolve_lazily_and_unknown_ones_fail() -> None:
    assert set(reprise.__all__) <= set(dir(reprise))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = reprise.Nope  # type: ignore[attr-defined]
