"""The protocol registry and run: names, skipped types, missing predictions, settings; `vr score
--protocol` end to end; the evaluate stage's metrics and report carry every configured protocol."""
import json

import pytest

from tests.test_evaluate import MODELS, evaluated  # noqa: F401 - the fixture
from tests.test_score import perfect_predictions, records
from videoreasoner.answers.protocols import NAMES, PROTOCOLS, parse_names, score_protocols
from videoreasoner.answers.protocols.base import MAX_PROTOCOL_CHARS, run_protocol
from videoreasoner.answers.score import main, score_predictions
from videoreasoner.core.atomic import write_jsonl
from videoreasoner.core.schema import PROBLEM_TYPES


def test_names_parse_from_repeats_and_comma_lists():
    assert parse_names(["vstar,timezero", "strict", "vstar"]) == ["vstar", "timezero", "strict"]
    with pytest.raises(ValueError, match="unknown protocol 'lmms'"):
        parse_names(["lmms"])
    assert NAMES[0] == "strict"
    for protocol in PROTOCOLS.values():
        assert set(protocol.problem_types) <= set(PROBLEM_TYPES), protocol.name
        assert protocol.official and protocol.comparisons, protocol.name


def test_other_types_are_skipped_and_counted_and_missing_predictions_scored_as_empty():
    rows = records()
    preds = [p for p in perfect_predictions(rows) if p["id"] != "tg-1"]
    result, items = run_protocol(PROTOCOLS["timezero"], rows, {p["id"]: p["prediction"] for p in preds})
    assert result["n_scored"] == 1 and result["n_missing"] == 1 and result["skipped"]["n"] == 7
    assert "temporal_grounding" not in result["skipped"]["by_type"]
    assert items == [{"id": "tg-1", "problem_type": "temporal_grounding", "score": 0.0,
                      "details": {"span": None}, "error": "missing_prediction"}]
    assert result["protocol"] == "timezero" and result["settings"] == {}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_overlong_completions_are_not_read(name):
    rows = records()
    by_id = {p["id"]: "1" * (MAX_PROTOCOL_CHARS + 1) for p in perfect_predictions(rows)}
    result, items = run_protocol(PROTOCOLS[name], rows, by_id)
    assert result["failures"]["by_error"] == {"too_long": result["n_scored"]}
    assert all(i["score"] == 0.0 for i in items)


def test_settings_are_checked_and_recorded():
    rows = records()
    by_id = {p["id"]: p["prediction"] for p in perfect_predictions(rows)}
    with pytest.raises(ValueError, match="unknown setting 'fsp'"):
        run_protocol(PROTOCOLS["cgstvg_hcstvg"], rows, by_id, settings={"fsp": 4})
    with pytest.raises(ValueError, match="setting vqa='judge'"):
        run_protocol(PROTOCOLS["vstar"], rows, by_id, settings={"vqa": "judge"})
    result, _ = run_protocol(PROTOCOLS["tubedetr_hcstvg"], rows, by_id, settings={"fps": 25.0})
    assert result["settings"] == {"fps": 25.0, "sample_fps": 5.0, "clip_seconds": 20.0, "video_max_len": 200}


def test_differences_to_strict_on_perfect_predictions():
    rows = records()
    preds = perfect_predictions(rows)
    strict, _ = score_predictions(rows, preds, n_boot=20)
    out = score_protocols(list(NAMES), rows, preds, strict)
    assert "strict" not in out and set(out) == set(PROTOCOLS)
    charades = out["lmms_eval_charades"][0]["vs_strict"]["mIoU"]
    assert charades == {"official_metric": "mIOU", "official": 1.0, "strict_metric": "per_type.temporal_grounding.mIoU",
                        "strict": 1.0, "difference": 0.0}
    # Video-R1's benchmark script scores OCR 0 whatever the answer; strict gives the perfect answer 1
    assert out["video_r1"][0]["vs_strict"]["ocr"]["difference"] == -1.0
    # our tube text is no JSON and holds many numbers: V-STaR reads neither its span nor its boxes
    assert out["vstar"][0]["metrics"]["m_tIoU"] == 0.0 and out["vstar"][0]["vs_strict"]["AM"]["difference"] < 0


def test_vr_score_protocol_end_to_end(tmp_path):
    split, preds = tmp_path / "split.jsonl", tmp_path / "preds.jsonl"
    write_jsonl(split, records())
    write_jsonl(preds, perfect_predictions(records()))
    out = tmp_path / "out"
    assert main(["--split", str(split), "--predictions", str(preds), "--out", str(out),
                 "--protocol", "lmms_eval_charades,timezero", "--protocol", "video_r1"]) == 0
    strict = json.loads((out / "metrics.json").read_text())
    assert strict["protocol"] == "strict" and strict["protocol_settings"] == {"answers": "strict", "fps": "record fps"}
    assert set(strict["protocols"]) == {"lmms_eval_charades", "timezero", "video_r1"}
    charades = json.loads((out / "metrics.lmms_eval_charades.json").read_text())
    assert charades["protocol"] == "lmms_eval_charades" and charades["metrics"]["mIOU"] == 100.0
    assert charades["skipped"]["n"] == 7 and "settings" in charades
    assert len((out / "per_item.video_r1.jsonl").read_text().splitlines()) == 5
    assert main(["--split", str(split), "--predictions", str(preds), "--out", str(out), "--protocol", "nope"]) == 1


def test_evaluate_metrics_and_report_carry_every_protocol(evaluated):  # noqa: F811 - the fixture
    root, metrics, _ = evaluated
    settings = metrics["settings"]["protocols"]
    assert settings["names"] == list(NAMES) and settings["strict"]["answers"] == "strict"
    assert all(f"--protocol {p}" in metrics["settings"]["rescore"] for p in PROTOCOLS)
    for name in MODELS:
        blocks = metrics["models"][name]["protocols"]
        assert set(blocks) == set(PROTOCOLS)
        for protocol, block in blocks.items():
            assert block["protocol"] == protocol and block["n_scored"] + block["skipped"]["n"] == 4
    rl = metrics["models"]["rl"]["protocols"]["lmms_eval_charades"]["vs_strict"]["mIoU"]
    assert rl["strict"] == metrics["models"]["rl"]["metrics"]["per_type"]["temporal_grounding"]["mIoU"]["value"]
    summary = json.loads((root / "eval/summary.json").read_text())
    assert summary["protocols"]["rl"]["lmms_eval_charades/mIoU-strict"] == rl["difference"]
    html = (root / "eval/report.html").read_text()
    assert "Strict vs official" in html and "lmms_eval_charades" in html


def test_unknown_protocols_in_params_are_rejected():
    from stages.evaluate import settings

    with pytest.raises(ValueError, match="params eval.protocols: unknown protocol 'x'"):
        settings({"protocols": ["strict", "x"]})
    with pytest.raises(ValueError, match="'vstar' is not in eval.protocols"):
        settings({"protocols": ["strict"], "protocol_settings": {"vstar": {}}})
