"""`reprise bench quality` and `reprise bench speed` run end to end on tiny inputs.

Real parts throughout: the local model, the embedded store, `reprise serve` and the
fake upstream as their own processes. The assertions are on the outputs' shape and
on facts that hold whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PAIRS = Path(__file__).parent.parent / "data" / "bench_pairs.jsonl"


def reprise(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reprise", "bench", *args, "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _rates(row: dict[str, Any]) -> list[float]:
    return [row[m]["value"] for m in ("hit_rate", "precision", "recall", "false_hit_rate")]


def test_bench_quality_sweeps_thresholds_and_writes_tables_json_and_plot(tmp_path: Path) -> None:
    done = reprise(
        "quality",
        "--pairs",
        str(PAIRS),
        "--out",
        str(tmp_path),
        "--resamples",
        "50",
        "--thresholds",
        "0:0.3:0.05",
        "--verifier",
        "threshold",
        "--replay",
    )

    result = json.loads((tmp_path / "quality-bench_pairs.json").read_text())
    assert (tmp_path / "quality-bench_pairs.png").read_bytes()[:4] == b"\x89PNG"
    assert "| threshold | hits | hit rate |" in done.stdout
    assert result["thresholds"] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    config = result["configurations"]["threshold"]
    overall = config["overall"]
    assert (overall["lookups"], overall["positives"]) == (22, 12)
    # The one identical pair is an exact-tier hit, even at threshold 0.
    assert config["exact_hits"] == 1
    assert overall["hits"][0] == 1
    # A fixed threshold only ever admits more as it loosens.
    assert overall["hits"] == sorted(overall["hits"])
    assert overall["hits"][-1] > overall["hits"][0]
    for row in overall["rows"]:
        for value in _rates(row):
            assert value is None or 0.0 <= value <= 1.0
        for est in row.values():
            if est["value"] is not None:
                assert est["low"] <= est["value"] <= est["high"]
    assert set(overall["best_recall"]) == {"0.85", "0.90", "0.95", "0.99"}
    assert set(config["slices"]) == {"hard_negative", "number_mismatch"}
    assert config["slices"]["hard_negative"]["positives"] == 0
    (replay,) = config["replay"]
    assert replay["lookups"] == replay["hits"] + replay["misses"]
    assert replay["hits"] == replay["correct_hits"] + replay["false_hits"]


def test_bench_speed_measures_hits_and_misses_through_the_gateway(tmp_path: Path) -> None:
    reprise(
        "speed",
        "--requests",
        "6",
        "--concurrency",
        "1",
        "--concurrency",
        "3",
        "--latency",
        "0.01",
        "--floor-samples",
        "10",
        # A loaded CI machine can take longer than the gateway's 250 ms for a lookup,
        # and a FAILED lookup stores nothing: the cells would miss their hits.
        "--lookup-budget-ms",
        "5000",
        "--out",
        str(tmp_path),
    )

    result = json.loads((tmp_path / "speed.json").read_text())
    markdown = (tmp_path / "speed.md").read_text()
    assert "| workload | c | p50 ms | p99 ms |" in markdown
    assert "| embedded | semantic hit: p99 / p50 (c=1) | <= 3.0 |" in markdown
    assert result["machine"]["cores"] >= 1
    floors = result["floors"]
    assert 0 < floors["round_trip"]["p50_ms"] <= floors["round_trip"]["p99_ms"]
    assert 0 < floors["model_p50_ms"] <= floors["model_p99_ms"]
    assert floors["model_batch_texts_per_s"] > 0
    assert floors["model_after_idle_p50_ms"] > 0
    (store,) = result["stores"].values()
    workloads = store["workloads"]
    for level in ("1", "3"):
        for cell in (workloads[w][level] for w in ("direct", "miss", "exact", "semantic")):
            assert cell["requests"] == cell["timed"] == 6
            assert cell["errors"] == 0
            assert 0 < cell["p50_ms"] <= cell["p90_ms"] <= cell["p99_ms"] <= cell["max_ms"]
            assert 0 <= cell["slow"] <= 6
            assert cell["rps"] > 0
        assert workloads["direct"][level]["upstream_calls"] == 6
        assert workloads["miss"][level]["cache"] == {"miss": 6}
        assert workloads["miss"][level]["upstream_calls"] == 6
        assert workloads["exact"][level]["cache"] == {"exact": 6}
        assert workloads["exact"][level]["upstream_calls"] == 0
        assert workloads["semantic"][level]["cache"] == {"semantic": 6}
        assert workloads["semantic"][level]["upstream_calls"] == 0
        steps = store["trace"][level]
        assert set(steps) == {"embed_ms", "search_ms", "verify_ms"}
        assert 0 < steps["embed_ms"]["p50"] <= steps["embed_ms"]["max"]
        miss = store["miss_trace"][level]
        assert 0 < miss["embed_ms"] <= miss["lookup_ms"] <= miss["to_backend_ms"]
        assert miss["backend_ms"] > 0
    ratios = store["ratios"]
    assert ratios["levels"] == [1, 3]
    assert ratios["failed_at_top"] == 0
    semantic = workloads["semantic"]["1"]
    assert ratios["semantic_p99_vs_p50"] == semantic["p99_ms"] / semantic["p50_ms"]


def _conversation(cid: str, group: str, first: str, answer: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": first}, {"role": "assistant", "content": answer}]
    return {"id": cid, "group": group, "messages": messages,
            "follow_up": "Can you give me an example?",
            "follow_up_reworded": "Could you give me an example?"}  # fmt: skip


def test_bench_context_counts_wrong_hits_per_key_layout(tmp_path: Path) -> None:
    conversations = [
        _conversation("c1", "g1", "What is a mutex?", "A lock for one thread at a time."),
        _conversation("c2", "g1", "What is a mutex?", "A mutual exclusion lock, in short."),
        _conversation("c3", "g2", "What is a monad?", "A way to chain computations."),
    ]
    document = "\n\n".join(f"Rule {i}: the pool opens at {6 + i}:00 on day {i}." for i in range(40))
    prompt = {"id": "d1", "document": document,
              "document_variant": document.replace("at 9:00", "at 19:00"),
              "question": "When does the pool open on day 3?",
              "question_reworded": "Can you tell me when the pool opens on day 3?",
              "other_question": "When does the pool open on day 5?"}  # fmt: skip
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(c) + "\n" for c in conversations))
    (tmp_path / "d.jsonl").write_text(json.dumps(prompt) + "\n")

    done = reprise("context", "--conversations", str(tmp_path / "c.jsonl"), "--long-prompts",
                   str(tmp_path / "d.jsonl"), "--out", str(tmp_path))  # fmt: skip

    result = json.loads((tmp_path / "context.json").read_text())
    cases = {c["case"]: c for c in result["conversations"] + result["long_prompts"]}
    for case in cases.values():
        if case["expected"] == "miss":
            assert case["hits"]["structured"] == 0, case
    assert cases["same follow-up after another conversation (same group)"]["lookups"] == 2
    assert cases["same follow-up after another conversation (other group)"]["lookups"] == 4
    assert cases["same follow-up sent alone"]["lookups"] == 3
    assert cases["reworded follow-up, same conversation"]["hits"]["structured"] == 3
    assert cases["document + question, exact repeat"]["hits"] == {"structured": 1, "flattened": 1}
    assert cases["one-fact variant + question"]["lookups"] == 1
    assert (tmp_path / "context.md").read_text() in done.stdout
