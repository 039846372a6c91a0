"""One set of verifiers: the RL reward, the TTS vote/verifier score and the evaluation metric.

Each `verify_*` takes a model completion (the raw text, `<think>…</think><answer>…</answer>`) and the
ground truth, and returns a `Verdict` with `score` in [0, 1], the `parsed` answer, type-specific
`details` (always the same keys for a type, zeros on failure, so metrics never miss a field) and an
`error` ("no_answer": no readable answer block; "unparseable": the block does not parse; None).
`verify(record, completion)` picks the verifier by the record's own problem_type.
A ground truth holding a non-finite number (NaN, ±inf; box times included) raises ValueError
(RecordError from `verify`): NaN compares false with everything and would score as a match. A
completion never yields a non-finite value (the parsers refuse them), so it scores 0 instead.
Geometry lives in videoreasoner/answers/iou.py, text similarity in videoreasoner/answers/text.py.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from videoreasoner.answers.format import (
    MAX_COMPLETION_CHARS,
    coerce_answer,
    extract_answer,
    parse_answer,
    tag_blocks,
)
from videoreasoner.answers.parse import parse_number
from videoreasoner.core.schema import OPTION_LETTERS, PROBLEM_TYPES, RecordError
from videoreasoner.answers.iou import (
    box_iou,
    evaluation_frame_times,
    temporal_iou,
    tube_frames,
    tube_tiou,
    tube_viou,
)
from videoreasoner.answers.text import rouge_official, rouge_score, wer_score

__all__ = [
    "Verdict", "verify", "verify_format", "verify_length", "verify_multiple_choice", "verify_numerical",
    "verify_regression", "verify_ocr", "verify_free_form", "verify_temporal_grounding",
    "verify_spatial_grounding", "verify_spatio_temporal_grounding", "temporal_iou", "box_iou",
    "tube_tiou", "tube_viou", "tube_frames", "evaluation_frame_times", "DETAIL_KEYS",
    "mean_relative_accuracy", "MRA_THRESHOLDS",
]

# The details every verdict of a type carries (zeros when the answer cannot be read).
DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    "regression": ("mra",),
    "free_form": ("rouge1", "rouge2", "rougeL", "rouge_official"),
    "temporal_grounding": ("iou",),
    "spatial_grounding": ("iou",),
    "spatio_temporal_grounding": ("tiou", "viou"),
}
_FORMAT_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass(frozen=True)
class Verdict:
    """The judgement of one completion: score in [0, 1], parsed answer, details, error or None."""

    score: float
    parsed: Any = None
    details: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(problem_type: str | None, error: str, parsed: Any = None) -> Verdict:
    zeros = {k: 0.0 for k in DETAIL_KEYS.get(problem_type or "", ())}
    return Verdict(0.0, parsed, zeros, error)


def _read(problem_type: str, completion: str, strict: bool, options: list[str] | None = None):
    """(parsed, None) or (None, failing Verdict)."""
    content = extract_answer(completion, strict=strict)
    if content is None:
        return None, _fail(problem_type, "no_answer")
    parsed = parse_answer(problem_type, content, options)
    if parsed is None:
        return None, _fail(problem_type, "unparseable")
    return parsed, None


def _require_finite(value: Any, where: str = "answer") -> None:
    """Raise ValueError naming the first non-finite number in a ground truth: numbers in lists and
    dicts, and dict keys that read as numbers (a tube's box times). Text is left to its verifier."""
    if isinstance(value, bool) or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}: a ground truth must be a finite number")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _require_finite(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            try:
                key_value = float(key)
            except (TypeError, ValueError):
                key_value = 0.0  # a name such as "span", not a number
            if not math.isfinite(key_value):
                raise ValueError(f"{where} has the key {key!r}: a ground truth time must be finite")
            _require_finite(item, f"{where}.{key}" if str(key).isidentifier() else f"{where}[{key}]")


# VSI-Bench's confidence thresholds θ = 0.50, 0.55, ..., 0.95, kept as twentieths so that 1 − θ is exact.
_MRA_TWENTIETHS = tuple(range(10, 20))
MRA_THRESHOLDS = tuple(k / 20 for k in _MRA_TWENTIETHS)


def mean_relative_accuracy(prediction: float, truth: float) -> float:
    """MRA (VSI-Bench): the share of θ in MRA_THRESHOLDS with |ŷ − y| / |y| < 1 − θ (strict).

    1 − θ is compared as (20 − 20θ) / 20 exactly, so an error of exactly 40 % passes θ ≤ 0.55 only.
    A ground truth of 0 has no relative error: only an exact 0 scores 1 there (as verify_regression).
    """
    if prediction is None or not math.isfinite(prediction):
        return 0.0
    if truth == 0.0:
        return float(prediction == 0.0)
    rel = abs(prediction - truth) / abs(truth)
    return sum(rel * 20 < 20 - k for k in _MRA_TWENTIETHS) / len(_MRA_TWENTIETHS)


def _clip01(x: float) -> float:
    return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, x))


# ---------------------------------------------------------------------------------------------------
# Format and length
# ---------------------------------------------------------------------------------------------------

def verify_format(text: str, problem_type: str | None = None, options: list[str] | None = None) -> Verdict:
    """1.0 when the text is exactly `<think>…</think><answer>…</answer>` (whitespace around allowed),
    each tag once, both parts non-empty, at most MAX_COMPLETION_CHARS; with `problem_type`, the answer
    must also parse as that type.
    """
    if not isinstance(text, str) or len(text) > MAX_COMPLETION_CHARS \
            or any(text.count(tag) != 1 for tag in _TAGS):
        return Verdict(0.0, error="bad_format")
    match = _FORMAT_RE.fullmatch(text)
    if not match or not match.group(1).strip() or not match.group(2).strip():
        return Verdict(0.0, error="bad_format")
    content = match.group(2).strip()
    if problem_type is None:
        return Verdict(1.0, content)
    parsed = parse_answer(problem_type, content, options)
    return Verdict(1.0, parsed) if parsed is not None else Verdict(0.0, content, error="unparseable")


def verify_length(text: str, min_words: int = 16, max_words: int = 256) -> Verdict:
    """A length term on the reasoning: whitespace-separated words inside the first <think> block.

    1.0 for min_words <= n <= max_words; n / min_words below; 1 − (n − max_words) / max_words above
    (0 at twice the maximum). No <think> block scores 0. details: {"words": n}.
    """
    blocks = tag_blocks(text if isinstance(text, str) else "", "<think>", "</think>")
    if not blocks:
        return Verdict(0.0, details={"words": 0.0}, error="bad_format")
    n = len(blocks[0].split())
    if n < min_words:
        score = n / min_words
    elif n > max_words:
        score = 1.0 - (n - max_words) / max_words
    else:
        score = 1.0
    return Verdict(_clip01(score), details={"words": float(n)})


# ---------------------------------------------------------------------------------------------------
# Answer types
# ---------------------------------------------------------------------------------------------------

def verify_multiple_choice(completion: str, answer: str, options: list[str] | None = None,
                           strict: bool = True) -> Verdict:
    """1.0 when the completion names exactly the correct option letter (several letters score 0)."""
    truth = str(answer).strip().upper()
    if len(truth) != 1 or truth not in OPTION_LETTERS[: len(options) if options else None]:
        raise ValueError(f"ground truth {answer!r} is not an option letter")
    parsed, fail = _read("multiple_choice", completion, strict, options)
    if fail:
        return fail
    return Verdict(float(parsed == truth), parsed)


def _number(answer: Any) -> float:
    value = parse_number(str(answer))
    if value is None:
        raise ValueError(f"ground truth {answer!r} is not a single number")
    return value


def verify_numerical(completion: str, answer: str, strict: bool = True,
                     rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> Verdict:
    """1.0 when the number equals the ground truth ("3" = "3.0" = "3.00"; "1,234" = "1234"),
    within a float-noise tolerance (math.isclose with rel_tol / abs_tol); else 0.
    """
    _require_finite(answer)
    truth = _number(answer)
    parsed, fail = _read("numerical", completion, strict)
    if fail:
        return fail
    return Verdict(float(math.isclose(parsed, truth, rel_tol=rel_tol, abs_tol=abs_tol)), parsed)


def verify_regression(completion: str, answer: str, strict: bool = True) -> Verdict:
    """1 − |ŷ − y| / |y| clipped to [0, 1]. A ground truth of 0 has no relative error: only an exact
    0 scores 1 there. details["mra"]: the mean relative accuracy (mean_relative_accuracy).
    """
    _require_finite(answer)
    truth = _number(answer)
    parsed, fail = _read("regression", completion, strict)
    if fail:
        return fail
    details = {"mra": mean_relative_accuracy(parsed, truth)}
    if truth == 0.0:
        return Verdict(float(parsed == 0.0), parsed, details)
    return Verdict(_clip01(1.0 - abs(parsed - truth) / abs(truth)), parsed, details)


def verify_ocr(completion: str, answer: str, strict: bool = True) -> Verdict:
    """1 − WER (jiwer) of the answer text against the ground truth, clipped to [0, 1]; case-insensitive."""
    _require_finite(answer)  # a float NaN would become the text "nan"
    parsed, fail = _read("ocr", completion, strict)
    if fail:
        return fail
    return Verdict(wer_score(parsed, str(answer)), parsed)


def verify_free_form(completion: str, answer: str, strict: bool = True) -> Verdict:
    """Mean ROUGE-1/2/L F1 against the ground truth (see videoreasoner/answers/text.py for conventions);
    details also hold "rouge_official", the official evaluator's stemmed ROUGE mean (not the score)."""
    _require_finite(answer)  # a float NaN would become the text "nan"
    parsed, fail = _read("free_form", completion, strict)
    if fail:
        return fail
    score, parts = rouge_score(parsed, str(answer))
    return Verdict(score, parsed, {**parts, "rouge_official": rouge_official(parsed, str(answer))})


def verify_temporal_grounding(completion: str, answer: list[float], duration: float | None = None,
                              distance_penalty: bool = False, strict: bool = True) -> Verdict:
    """Temporal IoU of the predicted [start, end] (seconds) with the ground truth; details["iou"].

    With distance_penalty (needs the video duration D, seconds), the score is
    IoU · (1 − |Δs| / D) · (1 − |Δe| / D), each factor clipped to [0, 1]; details["iou"] stays the
    plain IoU, which R1@k and mIoU use.
    """
    _require_finite(answer)
    temporal_iou(answer, answer)  # validates the ground truth before the completion is read
    parsed, fail = _read("temporal_grounding", completion, strict)
    if fail:
        return fail
    iou = temporal_iou(parsed, answer)
    score = iou
    if distance_penalty:
        if not duration or not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"distance_penalty needs the video duration, a finite number of seconds > 0, "
                             f"got {duration!r}")
        (ps, pe), (gs, ge) = sorted(parsed), sorted(answer)
        score = iou * _clip01(1 - abs(ps - gs) / duration) * _clip01(1 - abs(pe - ge) / duration)
    return Verdict(_clip01(score), parsed, {"iou": iou})


def verify_spatial_grounding(completion: str, answer: dict, strict: bool = True) -> Verdict:
    """Box IoU of the predicted [x1, y1, x2, y2] with answer["box"] (normalised); details["iou"]."""
    _require_finite(answer)
    box_iou(answer["box"], answer["box"])  # validates the ground truth
    parsed, fail = _read("spatial_grounding", completion, strict)
    if fail:
        return fail
    iou = box_iou(parsed, answer["box"])
    return Verdict(iou, parsed, {"iou": iou})


def verify_spatio_temporal_grounding(completion: str, answer: dict, frame_times: list[float] | None = None,
                                     fps: float | None = None, duration: float | None = None,
                                     strict: bool = True) -> Verdict:
    """Score = vIoU of the predicted tube with the ground truth; details {"tiou", "viou"}.

    Frames: `frame_times` (seconds) when given, else evaluation_frame_times(duration, fps), the frames
    the model is shown. Conventions in videoreasoner/answers/iou.py.
    """
    if frame_times is None:
        if fps is None or duration is None:
            raise ValueError("spatio-temporal scoring needs frame_times, or fps and duration")
        frame_times = evaluation_frame_times(duration, fps)
    _require_finite(list(frame_times), "frame_times")
    _require_finite(answer)  # every box and box time, not only those nearest a frame
    tube_viou(answer, answer, frame_times)  # validates the ground truth
    parsed, fail = _read("spatio_temporal_grounding", completion, strict)
    if fail:
        return fail
    tiou, viou = tube_tiou(parsed, answer, frame_times), tube_viou(parsed, answer, frame_times)
    return Verdict(viou, parsed, {"tiou": tiou, "viou": viou})


# ---------------------------------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------------------------------

_VERIFY_OPTIONS = ("strict", "distance_penalty", "frame_times", "fps")


def verify(record: dict, completion: str, **kw: Any) -> Verdict:
    """Score `completion` against `record` with the verifier of the record's own problem_type.

    Keyword options: strict (default True), distance_penalty (temporal grounding), frame_times or fps
    (spatio-temporal; fps defaults to the record's `fps`). A malformed ground truth raises RecordError
    naming the record and field.
    """
    unknown = set(kw) - set(_VERIFY_OPTIONS)
    if unknown:
        raise TypeError(f"verify() got unknown options {sorted(unknown)}")
    ptype, rid = record.get("problem_type"), str(record.get("id", "?"))
    if ptype not in PROBLEM_TYPES:
        raise RecordError(rid, "problem_type", f"unknown problem type {ptype!r}")
    strict = kw.get("strict", True)
    if ptype == "spatio_temporal_grounding" and kw.get("frame_times") is None \
            and not (kw.get("fps") or record.get("fps")):
        raise RecordError(rid, "fps", "spatio-temporal scoring needs the evaluation fps or frame_times")
    try:
        _require_finite(record["answer"])  # before coerce_answer turns a NaN into the text "nan"
        answer = coerce_answer(ptype, record["answer"])  # JSON text may hold NaN: each verifier checks
        return _dispatch(ptype, record, completion, answer, strict, kw)
    except (KeyError, ValueError, TypeError) as exc:
        field_name = "answer" if not isinstance(exc, KeyError) else str(exc).strip("'")
        raise RecordError(rid, field_name, f"cannot score: {exc}") from None


def _dispatch(ptype: str, record: dict, completion: str, answer: Any, strict: bool, kw: dict) -> Verdict:
    if ptype == "multiple_choice":
        return verify_multiple_choice(completion, answer, record.get("options"), strict=strict)
    if ptype == "numerical":
        return verify_numerical(completion, answer, strict=strict)
    if ptype == "regression":
        return verify_regression(completion, answer, strict=strict)
    if ptype == "ocr":
        return verify_ocr(completion, answer, strict=strict)
    if ptype == "free_form":
        return verify_free_form(completion, answer, strict=strict)
    if ptype == "temporal_grounding":
        return verify_temporal_grounding(completion, answer, record.get("duration"),
                                         kw.get("distance_penalty", False), strict=strict)
    if ptype == "spatial_grounding":
        return verify_spatial_grounding(completion, answer, strict=strict)
    fps = kw.get("fps") or record.get("fps")
    return verify_spatio_temporal_grounding(completion, answer, kw.get("frame_times"), fps,
                                            record.get("duration"), strict=strict)
