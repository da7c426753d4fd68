#!/usr/bin/env bash
# The peers of the side-by-side benchmark, each in a virtualenv of its own so
# that their dependencies never meet Reprise's. Idempotent; takes a few minutes.
#
#   LiteLLM proxy, pinned: 1.107.0 was a compromised release, never install it.
#   GPTCache with SQLite (SQLAlchemy) and FAISS, plus what its shim serves with.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}

make_venv() {  # name, packages...
    local venv=".venv-$1"; shift
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    nice "$venv/bin/pip" install -q --disable-pip-version-check "$@"
}

make_venv litellm 'litellm[proxy]==1.106.2' 'redisvl==0.28.0'
make_venv gptcache 'gptcache==0.1.44' 'faiss-cpu==1.15.1' 'sqlalchemy>=2' \
    'starlette>=0.37' 'uvicorn>=0.30' 'httpx>=0.27' 'numpy>=1.26'
LITELLM_LOCAL_MODEL_COST_MAP=True .venv-litellm/bin/python -c "import litellm, importlib.metadata as m; print('litellm', m.version('litellm'))"
.venv-gptcache/bin/python -c "import gptcache, faiss; print('gptcache', gptcache.__version__)"
