"""Perception gates: does a base model see? Greedy direct answers to the val split's perception items,
scored per task, each beside the same model's score with blank frames (paired, on the same items).

Tasks and their measure (items from videoreasoner/data/world/perception.py, meta.task):
- colour_word, shape_word, order_direct, option_lookup: accuracy (the parsed answer equals the truth,
  case and spacing aside; a free-form answer scores 1 only when its ROUGE is 1);
- count_direct: accuracy (the number equals the truth);
- when_visible_direct: temporal IoU of the span (half-open [start, end) seconds; IoU of intervals);
- where_at_time_direct: box IoU (normalised [x1, y1, x2, y2]);
- caption_line: mean ROUGE (reported, not gated).
Every value carries a percentile 95 % bootstrap interval; `gap` is video minus blank with a paired
bootstrap interval. A task passes its gate when the gap's interval lies above `min_gap` and, for tasks
with a target, the value reaches it (targets from params `pretrain.gates`). Option look-up is a text
skill (the word is in the question; multiple choice needs it): no gap is asked of it, only its target.
"""
from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from videoreasoner.answers.verifiers import verify
from videoreasoner.inference.controls import blank_frames

log = logging.getLogger(__name__)

TEXT_SKILLS = {"option_lookup"}  # the answer is in the question: gated on its target, not on a gap to blank
TASK_MEASURES = {
    "colour_word": "accuracy", "shape_word": "accuracy", "count_direct": "accuracy",
    "order_direct": "accuracy", "option_lookup": "accuracy", "when_visible_direct": "tiou",
    "where_at_time_direct": "box_iou", "caption_line": "rouge",
}


def item_score(record: dict, completion: str) -> float:
    """The task's measure for one item (see the module docstring); 0 for an unreadable answer."""
    measure = TASK_MEASURES[(record.get("meta") or {}).get("task")]
    verdict = verify(record, completion, strict=True)
    if measure == "accuracy":
        return float(verdict.score >= 1.0 - 1e-9)
    return float(verdict.score)


def _interval(values: np.ndarray, seed: int, name: str, n_boot: int) -> list[float]:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    low, high = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def summarise(records: Sequence[dict], video: Sequence[float], blank: Sequence[float], *,
              gates: dict[str, Any] | None = None, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Per task: measure, n, video and blank values with intervals, the paired gap, and the gate verdict.
    gates: {"min_gap": float, "targets": {task: value}}."""
    gates = gates or {}
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_task[(record.get("meta") or {}).get("task")].append(i)
    out: dict[str, Any] = {}
    for task in sorted(by_task):
        idx = np.array(by_task[task])
        v, b = np.asarray(video, float)[idx], np.asarray(blank, float)[idx]
        gap_ci = _interval(v - b, seed, f"{task}/gap", n_boot)
        target = (gates.get("targets") or {}).get(task)
        gated = task != "caption_line"
        sees = task in TEXT_SKILLS or gap_ci[0] > float(gates.get("min_gap", 0.0))
        passed = bool(sees and (target is None or v.mean() >= target))
        out[task] = {
            "measure": TASK_MEASURES[task], "n": int(len(idx)),
            "video": round(float(v.mean()), 4), "video_ci95": _interval(v, seed, f"{task}/video", n_boot),
            "blank": round(float(b.mean()), 4), "blank_ci95": _interval(b, seed, f"{task}/blank", n_boot),
            "gap": round(float((v - b).mean()), 4), "gap_ci95": gap_ci,
            "target": target, "gated": gated, "passed": passed if gated else None,
        }
    return out


def probe(engine, records: Sequence[dict], *, gates: dict[str, Any] | None = None, seed: int = 0,
          n_boot: int = 1000) -> dict[str, Any]:
    """Greedy answers with the video and with blank frames; per-task summary (see `summarise`)."""
    records = [r for r in records if (r.get("meta") or {}).get("task") in TASK_MEASURES]
    if not records:
        raise ValueError("perception probe: no perception items (meta.task) among the records")
    blind = engine.with_frames(engine.frames.with_transform(blank_frames))
    scores = {}
    for name, eng in (("video", engine), ("blank", blind)):
        gens = eng.generate(records, desc=f"perception ({name})")
        scores[name] = [item_score(r, g[0].text) for r, g in zip(records, gens)]
    tasks = summarise(records, scores["video"], scores["blank"], gates=gates, seed=seed, n_boot=n_boot)
    failed = [t for t, row in tasks.items() if row["passed"] is False]
    return {"tasks": tasks, "passed": not failed, "failed": failed, "n_items": len(records)}
