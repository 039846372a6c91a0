"""Per-record semantic checks of the unified schema (videoreasoner/core/schema.py) that GX has no expectation for.

Each checker is a pure function `check_x(record) -> (field, problem) | None`: the first problem it finds,
naming the field (dotted paths such as `answer.span` or `answer.boxes[1.5]`), or None when the record is
fine *for that concern*. Concerns do not overlap: a malformed answer is reported by `check_answer` only,
and `check_times` / `check_boxes` judge only answers that parse. Missing required fields are left to the
GX not-null expectations, so checkers skip a field that is None.

Units: times and durations are seconds; spans are half-open, [s, e) (videoreasoner/answers/spans.py):
a span needs 0 <= s < e <= duration, a box time of a tube lies in [s, e) (a box at t = e is outside),
and an instant lies in the clip's own span [0, duration). Boxes are [x1, y1, x2, y2] normalised to
[0, 1] of the frame, with x1 < x2 and y1 < y2.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from videoreasoner.answers.spans import in_span
from videoreasoner.core.schema import ALL_FIELDS, OPTION_LETTERS, PROBLEM_TYPES, Record
from videoreasoner.video.decoding import ROTATION_MODES, VideoInfo

Problem = tuple[str, str]
TIME_EPS = 1e-6  # seconds: float slack when comparing annotation times with a duration


def _is_number(value: Any) -> bool:
    """A finite int or float (bool excluded: JSON true is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _numbers(value: Any, n: int) -> list[float] | None:
    """`value` as a list of `n` finite numbers, or None."""
    if isinstance(value, (list, tuple)) and len(value) == n and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    return None


def _time_key(key: Any) -> float | None:
    """A spatio-temporal box key ("1.5") as seconds, or None when it is not a finite number."""
    try:
        t = float(key)
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) else None


def format_problem(problem: Problem | None) -> str | None:
    """(field, problem) -> "field: problem" (the text stored in a GX problem column)."""
    return None if problem is None else f"{problem[0]}: {problem[1]}"


def check_fields(record: Record) -> Problem | None:
    """No unknown fields; scalar fields have their schema types (enums are checked by GX sets)."""
    unknown = sorted(set(record) - set(ALL_FIELDS))
    if unknown:
        return unknown[0], "not a schema field"
    for field in ("id", "video", "source", "problem_type", "split"):
        value = record.get(field)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return field, f"expected a non-empty string, got {_kind(value)} {value!r}"
    duration = record.get("duration")
    if duration is not None and not (_is_number(duration) and duration > 0):
        return "duration", f"expected a positive finite number of seconds, got {_kind(duration)} {duration!r}"
    fps = record.get("fps")
    if fps is not None and not (_is_number(fps) and fps > 0):
        return "fps", f"expected a positive number, got {_kind(fps)} {fps!r}"
    for field in ("width", "height"):
        value = record.get(field)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return field, f"expected a positive integer of pixels, got {_kind(value)} {value!r}"
    if record.get("reasoning") is not None and not isinstance(record["reasoning"], str):
        return "reasoning", f"expected text, got {_kind(record['reasoning'])}"
    if record.get("meta") is not None and not isinstance(record["meta"], dict):
        return "meta", f"expected an object, got {_kind(record['meta'])}"
    return None


def check_question(record: Record) -> Problem | None:
    """The question is non-empty text."""
    question = record.get("question")
    if question is None:
        return None
    if not isinstance(question, str):
        return "question", f"expected text, got {_kind(question)}"
    if not question.strip():
        return "question", "empty question"
    return None


def check_options(record: Record) -> Problem | None:
    """multiple_choice: 2..26 distinct non-empty option texts (letters A, B, ... by position); others: none."""
    problem_type, options = record.get("problem_type"), record.get("options")
    if problem_type == "multiple_choice":
        if options is None:
            return "options", "missing for a multiple_choice question"
        if not isinstance(options, list):
            return "options", f"expected a list of option texts, got {_kind(options)}"
        if not 2 <= len(options) <= len(OPTION_LETTERS):
            return "options", f"expected 2 to {len(OPTION_LETTERS)} options, got {len(options)}"
        for i, text in enumerate(options):
            if not isinstance(text, str) or not text.strip():
                return f"options[{i}]", f"option {OPTION_LETTERS[i]} is not non-empty text: {text!r}"
        seen: set[str] = set()
        for text in options:
            if text.strip() in seen:
                return "options", f"duplicate option text {text!r}"
            seen.add(text.strip())
    elif problem_type in PROBLEM_TYPES and options is not None:
        return "options", f"given for a {problem_type} question (options are only for multiple_choice)"
    return None


def _check_box_shape(field: str, value: Any) -> Problem | None:
    if _numbers(value, 4) is None:
        return field, f"expected [x1, y1, x2, y2] as 4 finite numbers, got {value!r}"
    return None


def check_answer(record: Record) -> Problem | None:
    """The answer parses for its problem type (shape and types only; ranges are check_times/check_boxes)."""
    problem_type, answer = record.get("problem_type"), record.get("answer")
    if answer is None or problem_type not in PROBLEM_TYPES:
        return None
    if problem_type == "multiple_choice":
        if not (isinstance(answer, str) and len(answer) == 1 and answer in OPTION_LETTERS):
            return "answer", f"expected one option letter A-Z, got {answer!r}"
        options = record.get("options")
        if isinstance(options, list) and OPTION_LETTERS.index(answer) >= len(options):
            last = OPTION_LETTERS[max(len(options) - 1, 0)]
            return "answer", f"letter {answer!r} is not among the {len(options)} options (A-{last})"
    elif problem_type in ("numerical", "regression"):
        if not isinstance(answer, str):
            return "answer", f"expected a number written as a string, got {_kind(answer)} {answer!r}"
        try:
            value = float(answer)
        except ValueError:
            return "answer", f"{answer!r} does not parse as a number"
        if not math.isfinite(value):
            return "answer", f"{answer!r} is not a finite number"
    elif problem_type in ("free_form", "ocr"):
        if not isinstance(answer, str) or not answer.strip():
            return "answer", f"expected non-empty text, got {answer!r}"
    elif problem_type == "temporal_grounding":
        if _numbers(answer, 2) is None:
            return "answer", f"expected [start, end] seconds as 2 finite numbers, got {answer!r}"
    elif problem_type == "spatial_grounding":
        if not isinstance(answer, dict) or set(answer) != {"time", "box"}:
            return "answer", f"expected {{'time': t, 'box': [x1, y1, x2, y2]}}, got {answer!r}"
        if not _is_number(answer["time"]):
            return "answer.time", f"expected a finite number of seconds, got {answer['time']!r}"
        return _check_box_shape("answer.box", answer["box"])
    else:  # spatio_temporal_grounding
        if not isinstance(answer, dict) or set(answer) != {"span", "boxes"}:
            return "answer", f"expected {{'span': [s, e], 'boxes': {{t: box}}}}, got {answer!r}"
        if _numbers(answer["span"], 2) is None:
            return "answer.span", f"expected [start, end] seconds as 2 finite numbers, got {answer['span']!r}"
        boxes = answer["boxes"]
        if not isinstance(boxes, dict) or not boxes:
            return "answer.boxes", f"expected a non-empty {{time: box}} object, got {boxes!r}"
        for key, box in boxes.items():
            if _time_key(key) is None:
                return "answer.boxes", f"key {key!r} is not a time in seconds"
            bad = _check_box_shape(f"answer.boxes[{key}]", box)
            if bad:
                return bad
    return None


def _check_span(field: str, span: list[float], duration: float) -> Problem | None:
    start, end = span
    if not (0 <= start < end <= duration + TIME_EPS):
        return field, f"span [{start:g}, {end:g}] s must satisfy 0 <= start < end <= duration {duration:g} s"
    return None


def check_times(record: Record) -> Problem | None:
    """Spans satisfy 0 <= start < end <= duration; instants lie in [0, duration); box times in their
    tube's span [start, end), both half-open (spans.py)."""
    problem_type, answer, duration = record.get("problem_type"), record.get("answer"), record.get("duration")
    if not (_is_number(duration) and duration > 0) or check_answer(record) is not None or answer is None:
        return None
    if problem_type == "temporal_grounding":
        return _check_span("answer", _numbers(answer, 2), duration)
    if problem_type == "spatial_grounding":
        t = answer["time"]
        if not (0 <= t and in_span(t, (0.0, duration))):
            return "answer.time", f"time {t:g} s lies outside the clip [0, duration {duration:g}) s"
    if problem_type == "spatio_temporal_grounding":
        span = _numbers(answer["span"], 2)
        bad = _check_span("answer.span", span, duration)
        if bad:
            return bad
        for key in answer["boxes"]:
            t = _time_key(key)
            if not in_span(t, span):
                return f"answer.boxes[{key}]", (f"box time {t:g} s lies outside the half-open span "
                                                f"[{span[0]:g}, {span[1]:g}) s (a box at the end time is outside)")
    return None


def _check_box_range(field: str, box: list[float]) -> Problem | None:
    x1, y1, x2, y2 = box
    if not all(0.0 <= v <= 1.0 for v in box):
        return field, f"box {box} is not normalised to [0, 1]"
    if not (x1 < x2 and y1 < y2):
        return field, f"box {box} needs x1 < x2 and y1 < y2"
    return None


def check_boxes(record: Record) -> Problem | None:
    """Every box is normalised to [0, 1] with x1 < x2 and y1 < y2."""
    problem_type, answer = record.get("problem_type"), record.get("answer")
    if problem_type not in ("spatial_grounding", "spatio_temporal_grounding") or answer is None:
        return None
    if check_answer(record) is not None:
        return None
    if problem_type == "spatial_grounding":
        return _check_box_range("answer.box", _numbers(answer["box"], 4))
    for key, box in answer["boxes"].items():
        bad = _check_box_range(f"answer.boxes[{key}]", _numbers(box, 4))
        if bad:
            return bad
    return None


def check_video(record: Record, info: VideoInfo | str | None, tolerance_frames: float = 1.0,
                rotation: str = "apply") -> Problem | None:
    """The probe of the record's video agrees with it: the file decodes (`info` is the probe's VideoInfo,
    or its error text), duration within `tolerance_frames` frames (at the file's mean rate) of the time
    the last frame stops showing (presentation times, so variable-rate files are judged right), and
    `fps`/`width`/`height` if given (display size: after rotation). rotation "reject": a file whose
    display matrix turns its frames is a problem. `info` None means the video was not probed (a
    malformed `video` field, reported by check_fields, or probing switched off)."""
    if rotation not in ROTATION_MODES:
        raise ValueError(f"params validate.rotation: must be one of {list(ROTATION_MODES)}, got {rotation!r}")
    if info is None:
        return None
    if isinstance(info, str):
        return "video", info
    if info.rotation and rotation == "reject":
        return "video", (f"{info.path}: the display matrix rotates the frames by {info.rotation}°, and params "
                         f"rotation is 'reject'")
    duration = record.get("duration")
    if _is_number(duration) and abs(duration - info.duration) > tolerance_frames / info.fps + TIME_EPS:
        rate = f"a variable rate (mean {info.fps:g} fps)" if info.vfr else f"{info.fps:g} fps"
        return "duration", f"{duration:g} s but the file's {info.n_frames} frames at {rate} last {info.duration:g} s"
    fps = record.get("fps")
    if _is_number(fps) and not math.isclose(fps, info.fps, rel_tol=1e-3):
        return "fps", f"{fps:g} but the file runs at {'a mean of ' if info.vfr else ''}{info.fps:g} fps"
    for field, actual in (("width", info.width), ("height", info.height)):
        value = record.get(field)
        if isinstance(value, int) and value != actual:
            turned = f" as displayed (rotated {info.rotation}°)" if info.rotation else ""
            return field, f"{value} px but the file is {info.width}x{info.height}{turned}"
    return None


def timing_report(probes: dict[str, VideoInfo | str]) -> dict[str, Any]:
    """What validation reports about the videos' timing and orientation: the variable-frame-rate files
    (times taken from their presentation timestamps) and the rotated ones (degrees counter-clockwise),
    by path, plus their counts. Neither is an error by itself."""
    infos = {path: info for path, info in probes.items() if isinstance(info, VideoInfo)}
    vfr = sorted(path for path, info in infos.items() if info.vfr)
    rotated = {path: info.rotation for path, info in sorted(infos.items()) if info.rotation}
    return {"n_vfr": len(vfr), "vfr": vfr, "n_rotated": len(rotated), "rotated": rotated}


# Record-only checks, by the name of their GX problem column (the video check also needs the probe).
RECORD_CHECKS: dict[str, Callable[[Record], Problem | None]] = {
    "fields": check_fields,
    "question": check_question,
    "options": check_options,
    "answer": check_answer,
    "times": check_times,
    "boxes": check_boxes,
}
