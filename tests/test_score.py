"""Scoring an external predictions file: missing, duplicate and unknown ids; the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoreasoner.answers.format import format_target
from videoreasoner.core.atomic import read_jsonl, write_jsonl
from videoreasoner.answers.score import ScoreInputError, main, score_predictions

SAMPLES = Path(__file__).parent / "snapshots" / "sample_records.jsonl"


def records() -> list[dict]:
    return read_jsonl(SAMPLES)


def perfect_predictions(rows: list[dict]) -> list[dict]:
    return [{"id": r["id"], "prediction": format_target(r)} for r in rows]


def test_perfect_predictions_score_one_everywhere():
    rows = records()
    metrics, per_item = score_predictions(rows, perfect_predictions(rows), n_boot=20)
    assert [p["id"] for p in per_item] == [r["id"] for r in rows]
    assert all(p["score"] == 1.0 and p["error"] is None for p in per_item)
    assert metrics["overall"]["score"]["value"] == 1.0
    assert metrics["coverage"] == {"n_records": 8, "n_predictions": 8, "n_missing": 0, "missing_ids": []}


def test_missing_predictions_count_as_wrong_and_stay_in_the_denominator():
    rows = records()
    preds = perfect_predictions(rows)[2:]
    metrics, per_item = score_predictions(rows, preds, n_boot=20)
    missing = [p for p in per_item if p["error"] == "missing_prediction"]
    assert [p["id"] for p in missing] == [rows[0]["id"], rows[1]["id"]]
    assert all(p["score"] == 0.0 and p["prediction"] is None for p in missing)
    assert metrics["n"] == 8 and metrics["overall"]["score"]["value"] == pytest.approx(6 / 8)
    assert metrics["per_type"]["multiple_choice"]["score"]["value"] == 0.0
    assert metrics["coverage"]["n_missing"] == 2 and metrics["coverage"]["missing_ids"] == ["mc-1", "num-1"]


def test_duplicate_ids_raise():
    rows = records()
    preds = perfect_predictions(rows) + [{"id": "mc-1", "prediction": "<answer>A</answer>"}]
    with pytest.raises(ScoreInputError, match="1 duplicate prediction ids: mc-1"):
        score_predictions(rows, preds)


def test_unknown_ids_raise():
    rows = records()
    preds = perfect_predictions(rows) + [{"id": "ghost", "prediction": "<answer>A</answer>"}]
    with pytest.raises(ScoreInputError, match="1 ids are not in the split: ghost"):
        score_predictions(rows, preds)


@pytest.mark.parametrize("row", [{"id": "mc-1"}, {"prediction": "x"}, {"id": 3, "prediction": "x"}])
def test_malformed_prediction_rows_raise(row):
    with pytest.raises(ScoreInputError, match="row 1"):
        score_predictions(records(), [row])


def test_main_writes_metrics_and_per_item(tmp_path):
    rows = records()
    preds = perfect_predictions(rows)[1:]
    write_jsonl(tmp_path / "split.jsonl", rows)
    write_jsonl(tmp_path / "preds.jsonl", preds)
    out = tmp_path / "out"
    assert main(["--split", str(tmp_path / "split.jsonl"), "--predictions", str(tmp_path / "preds.jsonl"),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["coverage"]["n_missing"] == 1
    assert len(read_jsonl(out / "per_item.jsonl")) == 8
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "per_item.jsonl"]   # no temp files


def test_main_with_a_baseline_adds_the_paired_am_gain(tmp_path):
    rows = records()
    worse = [{"id": r["id"], "prediction": "<think></think><answer>nothing</answer>"} for r in rows]
    write_jsonl(tmp_path / "split.jsonl", rows)
    write_jsonl(tmp_path / "good.jsonl", perfect_predictions(rows))
    write_jsonl(tmp_path / "bad.jsonl", worse)
    out = tmp_path / "out"
    assert main(["--split", str(tmp_path / "split.jsonl"), "--predictions", str(tmp_path / "good.jsonl"),
                 "--baseline", str(tmp_path / "bad.jsonl"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    gain = metrics["paired_gain"]["AM"]
    baseline_am = score_predictions(rows, worse, n_boot=10)[0]["summary"]["AM"]["value"]
    assert gain["value"] == pytest.approx(metrics["summary"]["AM"]["value"] - baseline_am)
    assert gain["value"] > 0 and gain["ci95"][0] > 0 and metrics["paired_gain"]["baseline"].endswith("bad.jsonl")


def test_main_reports_bad_input_without_writing(tmp_path, caplog):
    rows = records()
    write_jsonl(tmp_path / "split.jsonl", rows)
    write_jsonl(tmp_path / "preds.jsonl", perfect_predictions(rows) * 2)
    out = tmp_path / "out"
    assert main(["--split", str(tmp_path / "split.jsonl"), "--predictions", str(tmp_path / "preds.jsonl"),
                 "--out", str(out)]) == 1
    assert "duplicate prediction ids" in caplog.text and not out.exists()


def test_lenient_mode_reads_untagged_answers():
    rows = [records()[0]]
    preds = [{"id": "mc-1", "prediction": "The answer is B."}]
    assert score_predictions(rows, preds, n_boot=10)[1][0]["score"] == 0.0
    assert score_predictions(rows, preds, n_boot=10, strict=False)[1][0]["score"] == 1.0


@pytest.mark.parametrize("problem_type, bad", [("temporal_grounding", [float("nan"), 2.0]),
                                               ("free_form", float("nan")),
                                               ("spatio_temporal_grounding", "boxes-inf")])
def test_a_non_finite_ground_truth_fails_naming_file_record_and_field(tmp_path, caplog, problem_type, bad):
    """Once, a NaN span scored 1.0 for any answer (min(1.0, nan)); now nothing is written."""
    rows = records()
    row = next(r for r in rows if r["problem_type"] == problem_type)
    row["answer"] = ({**row["answer"], "boxes": {**row["answer"]["boxes"], "0.5": [0.1, 0.1, float("inf"), 0.5]}}
                     if bad == "boxes-inf" else bad)
    write_jsonl(tmp_path / "split.jsonl", rows)  # json writes NaN / Infinity, and reads them back
    write_jsonl(tmp_path / "preds.jsonl", perfect_predictions(records()))
    out = tmp_path / "out"
    assert main(["--split", str(tmp_path / "split.jsonl"), "--predictions", str(tmp_path / "preds.jsonl"),
                 "--out", str(out)]) == 1
    assert f"{tmp_path / 'split.jsonl'}: record {row['id']}: field 'answer'" in caplog.text
    assert "finite" in caplog.text and not out.exists()
