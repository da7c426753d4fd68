"""`reprise cache stats | purge | export | import` against the embedded store and Redis."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from reprise._admin.stats import digest
from reprise._cli import main
from reprise.testing.configs import api_yaml


def config(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"""
backends:
  chat: {{ url: "http://127.0.0.1:9/v1" }}
  local-embed: {{ url: local }}
cache: {{ url: "{store}" }}
apis:
{api_yaml("chat")}"""
    )
    return path


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return str(tmp_path / "data")
    url: str = request.getfixturevalue("redis_url")
    return f"{url}?prefix=cli:{uuid.uuid4().hex}:&timeout=5"


def lines(count: int, partition: str) -> list[dict[str, object]]:
    answer = {"model": "gpt-4o", "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    return [
        {
            "prompt": f"What does the {i}th item of list {partition} say?",
            "response": json.dumps({**answer, "choices": [{"message": {"content": str(i)}}]}),
            "partition": partition,
            "model": "gpt-4o",
            "expires_at": time.time() + 3600,
            "input_tokens": 5,
            "output_tokens": 7,
            "backend_ms": 120.0,
        }
        for i in range(count)
    ]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_import_stats_export_purge_round_trip(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, store))
    source = tmp_path / "in.jsonl"
    rows = lines(70, "team-a") + lines(3, "team-b")
    text = "\n".join(json.dumps(r) for r in rows) + "\nnot json\n"
    source.write_text(text)

    report = run_json(capsys, "cache", "import", str(source), "--config", cfg)
    assert (report["imported"], report["skipped"]) == (73, 1)
    assert report["reasons"] == {"not JSON": 1}

    stats = run_json(capsys, "cache", "stats", "--json", "--config", cfg)
    assert (stats["entries"], stats["evictions"]) == (73, 0)
    (cache,) = stats["caches"]  # type: ignore[misc]
    shown = {p["partition"]: p["entries"] for p in cache["partitions"]}
    assert shown == {digest("team-a"): 70, digest("team-b"): 3}

    out = tmp_path / "out.jsonl"
    assert main(["cache", "export", "--out", str(out), "--config", cfg]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(e["prompt"] for e in exported) == sorted(str(r["prompt"]) for r in rows)
    assert {e["model"] for e in exported} == {"gpt-4o"}
    assert {e["backend_ms"] for e in exported} == {120.0}
    only_b = tmp_path / "b.jsonl"
    one = ["--partition", digest("team-b"), "--out", str(only_b), "--config", cfg]
    assert main(["cache", "export", *one]) == 0
    assert len(only_b.read_text().splitlines()) == 3

    capsys.readouterr()
    assert main(["cache", "purge", "--partition", digest("team-b"), "--yes", "--config", cfg]) == 0
    assert "deleted 3 entries" in capsys.readouterr().out
    assert main(["cache", "purge", "--config", cfg]) == 1  # not confirmed: nothing deleted
    assert run_json(capsys, "cache", "stats", "--json", "--config", cfg)["entries"] == 70
    assert main(["cache", "purge", "--yes", "--config", cfg]) == 0
    assert run_json(capsys, "cache", "stats", "--json", "--config", cfg)["entries"] == 0

    again = run_json(capsys, "cache", "import", str(out), "--config", cfg)
    assert again["imported"] == 73


def test_a_bad_config_or_cache_name_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, str(tmp_path / "data")))
    assert main(["cache", "stats", "--cache", "nope", "--config", cfg]) == 2
    assert "no cache 'nope'" in capsys.readouterr().err
    assert main(["cache", "stats", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err
