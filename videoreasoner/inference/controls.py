"""Video-blind controls for evaluation: what a score is worth without looking.

- `best_constant_answers(train)`: per problem type, the one answer that scores best on the train
  split when given to every question (candidates: the most frequent ground-truth answers, plus the
  per-coordinate median span / box / tube for grounding types), scored by the same verifiers.
- `blank_frames`: the same clip (same timestamps and fps) with every pixel black.
- `shuffled_frames(seed)`: the same clip with its frames in a random order that moves at least one
  frame (videoreasoner/training/sft_data.shuffled), seeded per video so every model sees the same order.
A model's use of the video is its metric minus the control's metric on the same items.
"""
from __future__ import annotations

import logging
import statistics
import zlib
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from videoreasoner.answers.format import coerce_answer, format_answer
from videoreasoner.answers.spans import in_span
from videoreasoner.inference.engines import FrameTransform
from videoreasoner.core.schema import OPTION_LETTERS
from videoreasoner.training.sft_data import shuffled
from videoreasoner.answers.verifiers import verify
from videoreasoner.video.inputs import SampledVideo

log = logging.getLogger(__name__)
CONTROL_TRANSFORMS = ("blank", "shuffled")


def blank_frames(clip: SampledVideo) -> SampledVideo:
    """All-black frames with the clip's shape and timing."""
    return clip.with_frames(np.zeros_like(clip.frames))


def shuffled_frames(seed: int = 0) -> FrameTransform:
    """A transform that permutes each clip's frames (deterministic per video path and seed)."""
    def transform(clip: SampledVideo) -> SampledVideo:
        return shuffled(clip, np.random.default_rng([seed, zlib.crc32(clip.path.encode())]))

    return transform


def control_transform(name: str, seed: int = 0) -> FrameTransform:
    if name == "blank":
        return blank_frames
    if name == "shuffled":
        return shuffled_frames(seed)
    raise ValueError(f"unknown control {name!r} (known: {CONTROL_TRANSFORMS})")


def constant_completion(problem_type: str, answer: Any) -> str:
    """The completion a constant answerer writes: `<answer>{format_answer(...)}</answer>`."""
    return f"<answer>{format_answer(problem_type, answer)}</answer>"


def _median_box(boxes: list[list[float]]) -> list[float]:
    return [round(statistics.median(b[k] for b in boxes), 2) for k in range(4)]


def _median_span(spans: list[list[float]]) -> list[float]:
    return [round(statistics.median(s[0] for s in spans), 2), round(statistics.median(s[1] for s in spans), 2)]


def _summary_candidates(problem_type: str, answers: list[Any], records: list[dict]) -> list[Any]:
    """Per-coordinate medians, which are often better constants than any single observed answer."""
    if problem_type == "multiple_choice":
        n = max(len(r.get("options") or []) for r in records)
        return list(OPTION_LETTERS[:n])
    if problem_type in ("numerical", "regression"):
        return [str(statistics.median(float(a) for a in answers))]
    if problem_type == "temporal_grounding":
        return [_median_span(answers)]
    if problem_type == "spatial_grounding":
        return [{"time": 0.0, "box": _median_box([a["box"] for a in answers])}]
    if problem_type == "spatio_temporal_grounding":
        span = _median_span([a["span"] for a in answers])
        box = _median_box([b for a in answers for b in a["boxes"].values()])
        # whole seconds inside the half-open span (spans.py): a box at its end would lie outside it
        times = [t for t in np.arange(np.ceil(span[0]), span[1] + 1.0, 1.0) if in_span(t, span)]
        return [{"span": span, "boxes": {f"{t:.1f}": box for t in times}}]
    return []


def best_constant_answers(train: list[dict], *, max_candidates: int = 24, max_records: int = 300,
                          seed: int = 0) -> dict[str, dict[str, Any]]:
    """{problem_type: {"answer", "completion", "train_score", "candidates", "records"}}.

    For each type: candidates are the max_candidates most frequent answers (by their canonical text)
    and the summary candidates; each is scored with `verify` on up to max_records train records of the
    type (a seeded sample) and the best mean score wins (ties: the more frequent candidate).
    """
    by_type: dict[str, list[dict]] = defaultdict(list)
    for record in train:
        by_type[record["problem_type"]].append(record)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for ptype, records in sorted(by_type.items()):
        answers = [coerce_answer(ptype, r["answer"]) for r in records]
        counts = Counter(format_answer(ptype, a) for a in answers)
        first = {}
        for a in answers:
            first.setdefault(format_answer(ptype, a), a)
        candidates = [first[text] for text, _ in counts.most_common(max_candidates)]
        candidates += _summary_candidates(ptype, answers, records)
        sample = records if len(records) <= max_records else \
            [records[i] for i in sorted(rng.choice(len(records), max_records, replace=False))]
        best = None
        for answer in candidates:
            completion = constant_completion(ptype, answer)
            score = float(np.mean([verify(r, completion).score for r in sample]))
            if best is None or score > best[0] + 1e-12:
                best = (score, answer, completion)
        out[ptype] = {"answer": best[1], "completion": best[2], "train_score": best[0],
                      "candidates": len(candidates), "records": len(sample)}
        log.info("best constant %s: %s (train score %.3f over %d records)", ptype, best[2], best[0], len(sample))
    return out


def constant_predictions(records: list[dict], constants: dict[str, dict[str, Any]]) -> list[dict]:
    """Predictions rows {"id", "prediction"} of the constant answerer (a type unseen in train: no row,
    which the scorer counts as a missing prediction scored 0)."""
    return [{"id": str(r["id"]), "prediction": constants[r["problem_type"]]["completion"]}
            for r in records if r["problem_type"] in constants]
