"""The dashboard in a real headless Chromium, after known traffic, agrees with /metrics.

`reprise serve` and the fake upstream run as processes, the openai SDK makes the
traffic, and Debian's `chromium` (installed by scripts/setup and .ci/run where
missing) loads `/reprise/admin/` with the admin key in the URL fragment (never
sent to the server; the page moves it to sessionStorage). `--dump-dom` after a
virtual-time budget gives the DOM the page's script built from the JSON
endpoints; with REPRISE_REFRESH_SCREENSHOT=1 it saves benchmarks/dashboard.png for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from reprise.testing import FakeUpstreamServer, GatewayServer
from reprise.testing.configs import api_yaml
from tests.app.test_admin import metric

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "dashboard-admin-key-0123456789"
SCREENSHOT = ROOT / "benchmarks" / "dashboard.png"
#: Set to refresh the README's screenshot; otherwise the test shoots into a temp dir,
#: so that a test run leaves the checkout as it was.
REFRESH = "REPRISE_REFRESH_SCREENSHOT"
PROMPTS = [
    "What is the capital of Peru?",
    "How long should I boil an egg?",
    "Who wrote the play Hamlet?",
    "How fast does light travel in a vacuum?",
]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: run scripts/setup (it installs Debian's chromium)")
    return found


def browse(url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="reprise-chromium-") as profile:
        command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def shown(dom: str, element: str) -> tuple[str, str]:
    """The `data-value` and the text of the dashboard element with this id."""
    found = re.search(rf'id="{element}"[^>]*data-value="([^"]*)"[^>]*>([^<]*)<', dom)
    assert found is not None, f"#{element} not in the page"
    return found.group(1), found.group(2)


def config(upstream: str) -> str:
    return f"""
backends:
  chat: {{ url: "{upstream}/v1" }}
  local-embed: {{ url: local }}
cache: {{ url: ":memory:", lookup-budget-ms: 5000 }}
admin: {{ key: "{ADMIN_KEY}" }}
prices:
  gpt-4o: {{ input-per-million: 2.5, output-per-million: 10 }}
apis:
{api_yaml("chat")}"""


def traffic(url: str) -> None:
    """Four prompts, two of them asked three times: 4 misses and 4 hits."""
    with openai.OpenAI(base_url=f"{url}/chat/v1", api_key="client-key", max_retries=0) as client:
        for i, prompt in enumerate(PROMPTS):
            asks = 3 if i < 2 else 1
            for _ in range(asks):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": prompt}]
                )
                _settled(url)


def _settled(url: str) -> None:
    for _ in range(200):
        if httpx.get(f"{url}/healthz").json()["pending_stores"] == 0:
            return


def test_the_dashboard_shows_what_metrics_count(
    fake_upstream: FakeUpstreamServer,
    start_gateway: Callable[[str], GatewayServer],
    tmp_path: Path,
) -> None:
    gateway = start_gateway(config(fake_upstream.url))
    traffic(gateway.url)
    page = f"{gateway.url}/reprise/admin/#key={ADMIN_KEY}"

    dom = browse(page, "--dump-dom")
    metrics = httpx.get(f"{gateway.url}/metrics").text

    assert 'data-loaded="true"' in dom, "the page's script did not load the stats"
    hits = metric(metrics, "reprise_cache_lookups_total", status="HIT")
    lookups = metric(metrics, "reprise_cache_lookups_total")
    tokens = metric(metrics, "reprise_cache_tokens_saved_total")
    assert (hits, lookups) == (4, 8)
    rate, rate_text = shown(dom, "hit-rate")
    assert float(rate) == pytest.approx(hits / lookups)
    assert rate_text == f"{100 * hits / lookups:.1f}%"
    saved, saved_text = shown(dom, "tokens-saved")
    assert tokens > 0
    assert int(saved) == tokens
    assert saved_text == f"{int(tokens):,}"
    assert shown(dom, "entries")[0] == "4"
    assert dom.count('class="HIT"') >= 4  # the recent decisions table
    assert PROMPTS[0] not in dom  # no prompt text unless the config opts in

    shot = SCREENSHOT if os.environ.get(REFRESH) else tmp_path / "dashboard.png"
    browse(page, f"--screenshot={shot}", "--window-size=1280,1100")
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
