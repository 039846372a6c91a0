"""The IoU family: temporal spans, boxes and spatio-temporal tubes.

Conventions, where published implementations differ:
- Spans are half-open, [start, end) seconds: the project's one span rule, stated and implemented in
  videoreasoner/answers/spans.py. Temporal IoU of continuous spans does not depend on it (an end
  point has length zero); tube frame sets do.
- Temporal IoU = overlap / (max(e, ê) − min(s, ŝ)): the hull, not the sum of lengths minus overlap.
  For overlapping spans the two agree; for disjoint spans the overlap is 0 either way. Reversed spans
  are reordered. Zero-length spans: two identical instants score 1, anything else with no overlap 0
  (no division by zero).
- Box IoU on [x1, y1, x2, y2]: reversed corners are reordered; coordinates are not clipped. Two
  identical degenerate boxes score 1, otherwise zero area scores 0.
- Tubes are scored on the evaluation frame times (a grid of k / fps at the evaluation rate). A tube's
  frames are those with s <= t < e (spans.py `in_span`): a frame at exactly t = e is outside, so the
  ground truth [enter, exit] of an object names exactly the frames it is drawn in. A span that holds
  no frame time (shorter than a frame interval, or between two frames) takes the frame on screen at
  its start (frame k shows during [t_k, t_k + Δ), Δ the smallest frame interval), so a short span
  inside the video is never frameless; a span outside the video has no frames.
  A tube's box at a frame is its annotated box at the nearest annotated time (ties go to the earlier
  time); a tube without boxes has IoU 0 at every frame.
  tIoU = |S_i| / |S_u|; vIoU = Σ_{t ∈ S_i} IoU(b̂_t, b_t) / |S_u|; both 0 when S_u is empty.
- A time or coordinate that is not a number (a numeric string "3", a bool, None) raises ValueError:
  callers parse text first (videoreasoner/answers/parse.py). Ints, floats and numpy numbers are accepted.
- A non-finite time, coordinate or box time (NaN, ±inf) raises ValueError: NaN compares false with
  everything, so a NaN ground truth would otherwise score as a match (min(1.0, nan) is 1.0). A ratio
  that overflows (finite but enormous predictions) scores 0.
"""
from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Sequence

from videoreasoner.answers.spans import in_span


def _numbers(values: Sequence[object], what: str) -> list[float]:
    """The values as floats; a non-number (a string such as "3", None, a bool) raises ValueError:
    float() would read "3" silently, and True as 1."""
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"{what} needs numbers, got {v!r} ({type(v).__name__}) in {list(values)!r}")
    return [float(v) for v in values]


def _finite(values: Sequence[float], what: str, raw: object) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} needs finite numbers, got {raw!r}")


def _ratio(num: float, den: float) -> float:
    """num / den clipped to [0, 1]; 0 when it is not finite (inf / inf after an overflow)."""
    value = num / den
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def _ordered(span: Sequence[float]) -> tuple[float, float]:
    if len(span) != 2:
        raise ValueError(f"a span needs [start, end], got {span!r}")
    s, e = _numbers(span, "a span [start, end]")
    _finite((s, e), "a span [start, end]", span)
    return (s, e) if s <= e else (e, s)


def temporal_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU in [0, 1] of two [start, end] spans in seconds (conventions in the module docstring)."""
    s1, e1 = _ordered(a)
    s2, e2 = _ordered(b)
    if (s1, e1) == (s2, e2):  # also when the hull of enormous spans overflows to inf
        return 1.0
    overlap = max(0.0, min(e1, e2) - max(s1, s2))
    hull = max(e1, e2) - min(s1, s2)
    if hull <= 0.0:
        return 1.0 if (s1, e1) == (s2, e2) else 0.0
    return _ratio(overlap, hull)


def _ordered_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    if len(box) != 4:
        raise ValueError(f"a box needs [x1, y1, x2, y2], got {box!r}")
    x1, y1, x2, y2 = _numbers(box, "a box [x1, y1, x2, y2]")
    _finite((x1, y1, x2, y2), "a box [x1, y1, x2, y2]", box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU in [0, 1] of two [x1, y1, x2, y2] boxes (normalised or pixels, the same for both)."""
    ax1, ay1, ax2, ay2 = _ordered_box(a)
    bx1, by1, bx2, by2 = _ordered_box(b)
    if (ax1, ay1, ax2, ay2) == (bx1, by1, bx2, by2):  # also when an area overflows to inf
        return 1.0
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if union <= 0.0:
        return 1.0 if _ordered_box(a) == _ordered_box(b) else 0.0
    return _ratio(inter, union)


def evaluation_frame_times(duration: float, fps: float) -> list[float]:
    """The evaluation time grid of a tube: k / fps seconds for k = 0 .. n-1 with n = floor(duration * fps)
    (at least one). `fps` is the evaluation rate (a record's own fps by default), so the grid is the
    record's frames for a constant-rate file; it does not depend on which frames a model was shown.
    """
    if not (fps > 0 and math.isfinite(fps)) or not (duration >= 0 and math.isfinite(duration)):
        raise ValueError(f"need fps > 0 and duration >= 0, got fps={fps!r} duration={duration!r}")
    n = max(1, int(math.floor(duration * fps + 1e-6)))
    return [k / fps for k in range(n)]


def tube_frames(span: Sequence[float], frame_times: Sequence[float]) -> set[int]:
    """Indices of the evaluation frames (times in seconds) a tube's half-open span [s, e) covers; a span
    holding no frame time gets the frame on screen at s (see the module docstring)."""
    s, e = _ordered(span)
    inside = {i for i, t in enumerate(frame_times) if in_span(t, (s, e))}
    if inside or not frame_times:
        return inside
    step = _frame_interval(frame_times)
    shown = [(t, i) for i, t in enumerate(frame_times) if in_span(s, (t, t + step))]
    return {max(shown)[1]} if shown else set()


def _frame_interval(frame_times: Sequence[float]) -> float:
    times = sorted(frame_times)
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return min(gaps) if gaps else 0.0


def _box_at(boxes: dict, t: float) -> list[float] | None:
    """The box annotated nearest to time t (ties: the earlier time); None when there are none."""
    if not boxes:
        return None
    times = sorted((float(k), v) for k, v in boxes.items())
    _finite([k for k, _ in times], "a tube's box times", list(boxes))
    keys = [k for k, _ in times]
    i = bisect.bisect_left(keys, t)
    candidates = [j for j in (i - 1, i) if 0 <= j < len(keys)]
    best = min(candidates, key=lambda j: (abs(keys[j] - t), keys[j]))
    return times[best][1]


def _frame_sets(pred: dict, gt: dict, frame_times: Sequence[float]) -> tuple[set[int], set[int]]:
    p = tube_frames(pred["span"], frame_times)
    g = tube_frames(gt["span"], frame_times)
    return p & g, p | g


def tube_tiou(pred: dict, gt: dict, frame_times: Sequence[float]) -> float:
    """Temporal IoU of two tubes over the evaluation frame set: |S_i| / |S_u| (0 when S_u is empty)."""
    both, either = _frame_sets(pred, gt, frame_times)
    return len(both) / len(either) if either else 0.0


def tube_viou(pred: dict, gt: dict, frame_times: Sequence[float]) -> float:
    """vIoU = Σ_{t ∈ S_i} IoU(b̂_t, b_t) / |S_u| over the evaluation frames (0 when S_u is empty)."""
    both, either = _frame_sets(pred, gt, frame_times)
    if not either:
        return 0.0
    total = 0.0
    for i in both:
        t = frame_times[i]
        pred_box, gt_box = _box_at(pred.get("boxes") or {}, t), _box_at(gt.get("boxes") or {}, t)
        if pred_box is not None and gt_box is not None:
            total += box_iou(pred_box, gt_box)
    return min(1.0, total / len(either))
