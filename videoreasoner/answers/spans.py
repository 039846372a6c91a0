"""The span rule, stated once: every span is half-open, [start, end) in seconds.

A thing with span [s, e] is present at time t iff s <= t < e. Everything that writes or reads a span
follows this one rule:
- the synthetic world draws an object in frame k iff enter <= k / fps < exit, and annotates
  [enter, exit] with box times in that range (videoreasoner/data/world/scene.py, questions.py);
- importers write the frames first..last of a tube as [t_first, t_last + one frame interval)
  (videoreasoner/data/importers/hcstvg.py); continuous spans are kept as published (charades_sta.py);
- record checks put every box time of a tube inside its span, a box at t = end being outside
  (videoreasoner/data/record_checks.py);
- a tube's frame set is the evaluation frames with s <= t < e (videoreasoner/answers/iou.py
  `tube_frames`), which the verifiers, the RL rewards, the TTS vote and the metrics all score with.
So two spans that meet (one ends where the next starts) share no frame, and e − s is the time on
screen (frames × frame interval on a frame grid): an object drawn in frames 4..11 of a 4-fps clip has
the span [1.0, 3.0], and a prediction "1.0 to 3.0" names exactly those frames.

Times are compared at the precision answers are written in (TIME_DECIMALS of
videoreasoner/answers/canonical.py: 10 ms): a time within SPAN_TOLERANCE_S (5 ms) of a boundary counts
as on it. A frame at 1/15 s therefore belongs to a span written "0.07 to 0.17" and not to one that ends
at "0.07", and a boundary rounded to the millisecond by an importer still falls on its frame. Frames
closer together than 10 ms (over 100 fps) are told apart only to that precision.

Temporal IoU of continuous spans (iou.py `temporal_iou`) is the same for open and closed ends: an end
point has length zero. The rule matters wherever spans become sets of frames or times.
"""
from __future__ import annotations

from collections.abc import Sequence

from videoreasoner.answers.canonical import TIME_DECIMALS

SPAN_TOLERANCE_S = 0.5 * 10.0 ** -TIME_DECIMALS


def in_span(t: float, span: Sequence[float]) -> bool:
    """True iff time t (seconds) lies in the half-open span [start, end) (seconds, start <= end), with
    both boundaries taken SPAN_TOLERANCE_S early: a time on a boundary belongs to the span it starts."""
    start, end = span
    return start - SPAN_TOLERANCE_S <= t < end - SPAN_TOLERANCE_S

