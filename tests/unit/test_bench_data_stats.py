"""The benchmark's loaders and statistics, on small hand-made inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from reprise._bench import stats
from reprise._bench.data import (
    Pair,
    duplicate_clusters,
    load_pairs,
    qqp_texts_and_duplicates,
    shared_data_dir,
)
from reprise._bench.quality import parse_thresholds, select
from reprise._exceptions import ConfigError


def test_jsonl_rows_keep_group_and_boolean_flags(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    row = {"text_a": "a", "text_b": "b", "label": 1, "group": "g", "hard_negative": False}
    path.write_text(json.dumps(row) + "\n\n", encoding="utf-8")

    (pair,) = load_pairs(path)

    assert pair == Pair("a", "b", 1, "g", {"hard_negative": False})


def test_a_label_other_than_0_or_1_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text_a": "a", "text_b": "b", "label": 3}) + "\n")

    with pytest.raises(ConfigError, match=r"p\.jsonl:1"):
        load_pairs(path)


def test_sick_marks_contradictions_and_only_related_entailments_as_same(tmp_path: Path) -> None:
    path = tmp_path / "SICK_trial.txt"
    path.write_text(
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
        "1\tA man is playing\tA man plays\t4.8\tENTAILMENT\n"
        "2\tA man is playing\tNo man is playing\t3.9\tCONTRADICTION\n"
        "3\tA dog runs\tA cat sleeps\t1.2\tNEUTRAL\n",
        encoding="utf-8",
    )

    pairs = load_pairs(path)

    assert [p.label for p in pairs] == [1, 0, 0]
    assert [p.flags["contradiction"] for p in pairs] == [False, True, False]
    assert [p.flags["negation"] for p in pairs] == [False, True, False]


def test_mrpc_skips_the_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "msr_paraphrase_train.txt"
    path.write_text('\ufeff1\t1\t2\tHe said "yes.\tHe agreed.\n0\t3\t4\tUp.\tDown.\n', "utf-8")

    pairs = load_pairs(path)

    assert [(p.text_a, p.label) for p in pairs] == [('He said "yes.', 1), ("Up.", 0)]


def test_stsb_drops_the_ambiguous_middle_band(tmp_path: Path) -> None:
    path = tmp_path / "sts-dev.csv"
    lines = [
        "main-captions\tMSRvid\t2012\t1\t4.5\tA man runs.\tA man is running.",
        "main-captions\tMSRvid\t2012\t2\t3.0\tA man runs.\tA man walks.",
        "main-news\theadlines\t2013\t3\t0.5\tStocks fall.\tIt rains.\textra\tcolumns",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    pairs = load_pairs(path)

    assert [p.label for p in pairs] == [1, 0]


def test_duplicate_clusters_join_labelled_duplicates_transitively() -> None:
    pairs = [Pair("a", "b", 1), Pair("b", "c", 1), Pair("c", "d", 0)]

    clusters = duplicate_clusters(pairs)

    assert clusters["a"] == clusters["b"] == clusters["c"] != clusters["d"]


def test_thresholds_parse_as_a_range_or_a_list() -> None:
    assert parse_thresholds("0:0.3:0.1") == [0.0, 0.1, 0.2, 0.3]
    assert parse_thresholds("0.2,0.05") == [0.05, 0.2]
    with pytest.raises(ConfigError):
        parse_thresholds("0:2:1")


def test_folds_split_by_group_and_cover_every_pair() -> None:
    pairs = [Pair(f"a{i}", f"b{i}", i % 2, group=f"g{i // 3}") for i in range(60)]

    folds = [select(pairs, limit=None, fold=f"{k}/3", seed=0) for k in range(3)]

    assert sum(len(f) for f in folds) == 60
    groups = [{p.group for p in f} for f in folds]
    assert not (groups[0] & groups[1])
    assert not (groups[1] & groups[2])


def test_metrics_count_false_hits_against_all_lookups() -> None:
    # 10 lookups, 4 positives; 5 hits of which 3 correct.
    hits = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)[:, None]
    labels = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    units = stats.group_index([None] * 10)

    (row,) = stats.bootstrap(hits, hits & labels[:, None], labels, units, resamples=200)

    assert row["hit_rate"].value == pytest.approx(0.5)
    assert row["precision"].value == pytest.approx(0.6)
    assert row["recall"].value == pytest.approx(0.75)
    assert row["false_hit_rate"].value == pytest.approx(0.2)
    for est in row.values():
        assert est.low <= est.value <= est.high


def test_precision_without_hits_is_nan_not_zero() -> None:
    hits = np.zeros((4, 1), dtype=bool)
    labels = np.array([1, 0, 1, 0], dtype=bool)

    (row,) = stats.bootstrap(hits, hits, labels, stats.group_index([None] * 4), resamples=20)

    assert math.isnan(row["precision"].value)
    assert row["recall"].value == 0.0


def test_group_resampling_keeps_a_group_together() -> None:
    # Two groups of identical rows: every resample's hit rate is 0, 0.5 or 1.
    hits = np.array([1, 1, 1, 0, 0, 0], dtype=bool)[:, None]
    labels = hits[:, 0]
    units = stats.group_index(["x", "x", "x", "y", "y", "y"])

    (row,) = stats.bootstrap(hits, hits, labels, units, resamples=300, seed=1)

    assert list(units) == [0, 0, 0, 1, 1, 1]
    assert row["hit_rate"].low == 0.0
    assert row["hit_rate"].high == 1.0


def test_best_recall_picks_the_highest_recall_above_the_precision_floor() -> None:
    def row(p: float, r: float) -> dict[str, stats.Estimate]:
        return {"precision": stats.Estimate(p, p, p), "recall": stats.Estimate(r, r, r)}

    rows = [row(0.99, 0.1), row(0.92, 0.3), row(0.85, 0.5), row(float("nan"), 0.0)]

    assert stats.best_recall([0.0, 0.1, 0.2, 0.3], rows, 0.90) == (0.3, 0.1)
    assert stats.best_recall([0.0, 0.1, 0.2, 0.3], rows, 0.995) is None


def test_shared_data_dir_sits_beside_the_checkout_unless_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPRISE_DATA", raising=False)
    checkout = Path(__file__).resolve().parents[2]
    assert shared_data_dir() == checkout.parent / "shared" / "data"
    monkeypatch.setenv("REPRISE_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    rows = [
        {"text_a": "How old is the sun?", "text_b": "What is the age of the sun?", "label": 1},
        {"text_a": "How old is the sun?", "text_b": "How hot is the sun?", "label": 0},
    ]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts, dups = qqp_texts_and_duplicates(tmp_path / "q.jsonl")
    assert texts == ["How old is the sun?", "What is the age of the sun?", "How hot is the sun?"]
    assert dups == [("How old is the sun?", "What is the age of the sun?")]
