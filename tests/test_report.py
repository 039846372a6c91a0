"""report.html: self-contained (figures as data, no external URL), ladder and TTS curve with the chosen point."""
import re

from videoreasoner.answers.metrics import aggregate
from videoreasoner.inference.report import build_report, read_curve, write_report
from stages.tts import write_curve

TYPES = ("multiple_choice", "temporal_grounding", "spatio_temporal_grounding")


def items(score):
    return [{"id": f"{t}{i}", "problem_type": t, "score": score * (i % 2),
             "details": {"iou": score, "tiou": score, "viou": score / 2}} for t in TYPES for i in range(4)]


def fake_metrics():
    block = lambda s: {"metrics": aggregate(items(s), n_boot=50)}  # noqa: E731
    models = {}
    for name, label, s in [("base", "base", 0.1), ("sft", "sft", 0.4), ("rl", "rl", 0.5),
                           ("rl_tts", "rl + policy", 0.6)]:
        models[name] = {**block(s), "label": label, "controls": {"blank": block(0.1), "shuffled": block(0.2)},
                        "video_use": {"blank": {"overall": s - 0.1, "AM": None}},
                        "cost": {"tokens_per_item": 80.0, "seconds_per_item": 0.2, "generations_per_item": 1.0}}
    gains = {"sft-base": {"value": 0.3, "ci95": [0.25, 0.35], "n": 12},
             "rl-sft": {"value": -0.012, "ci95": [-0.03, 0.01], "n": 12}}
    return {"models": models, "constant": {"metrics": aggregate(items(0.05), n_boot=50)}, "ladder_gains": gains,
            "settings": {"items": {"n": 12, "max_items_per_type": 4}, "n_boot": 50, "prompt_version": "1"}}


CURVE = [{"point": "greedy n=1 frames=4", "strategy": "greedy", "n": 1, "frames": 4, "metric": 0.3,
          "metric_low": 0.2, "metric_high": 0.4, "tokens_per_item": 80, "seconds_per_item": 0.1,
          "generations_per_item": 1, "items": 12, "chosen": 1},
         {"point": "self_consistency n=4 frames=8", "strategy": "self_consistency", "n": 4, "frames": 8,
          "metric": 0.31, "metric_low": 0.2, "metric_high": 0.4, "tokens_per_item": 320, "seconds_per_item": 0.4,
          "generations_per_item": 4, "items": 12, "chosen": 0}]


def test_report_is_self_contained(tmp_path):
    write_curve(tmp_path / "curve.csv", CURVE)
    curve = read_curve(tmp_path / "curve.csv")
    assert curve[0]["chosen"] == 1 and curve[1]["metric"] == 0.31
    write_report(tmp_path / "report.html", fake_metrics(), curve)
    html = (tmp_path / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") == 2  # ladder figure and TTS curve
    assert "Chosen operating point: <b>greedy n=1 frames=4</b>" in html


def test_report_shows_the_ladder_per_problem_type_and_the_controls():
    html = build_report(fake_metrics())
    for label in ("base", "sft", "rl", "rl + policy", "best constant answer", "blank frames", "shuffled frames"):
        assert label in html, label
    for ptype in TYPES:
        assert f"<caption>{ptype}</caption>" in html
    assert "R1@0.5" in html and "vIoU@0.3" in html and "LGM" in html
    assert "<td>sft-base</td><td>+30.0</td><td>[+25.0, +35.0]</td>" in html  # paired gains of the rungs
    assert "<td>rl-sft</td><td>-1.2</td><td>[-3.0, +1.0]</td>" in html
    assert "data:image/png;base64," in html and "Test-time scaling" not in html  # no curve given
