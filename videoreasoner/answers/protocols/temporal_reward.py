"""The temporal-IoU RL rewards of TimeZero (`timezero`) and VideoChat-R1 (`videochat_r1`), as scorers
of temporal_grounding answers; the summary is the mean reward (their mIoU).

Read from www-Ye/TimeZero src/open_r1/grpo_video.py @ a7c3523 and OpenGVLab/VideoChat-R1
src/open_r1/grpo_tg.py @ 73b2ea9 (the same parser and IoU, two differences). Reproduced quirks:
- TimeZero L80-86 / VideoChat-R1 L76-82: only the LAST <answer>…</answer> block is read (non-greedy,
  across lines); no block scores 0;
- L89 / L85: the span is the LAST match of "<number> to <number>" or "<number> and <number>" (case
  ignored) with exactly one space on each side of the word: "2.5-7.0", "[2.5, 7.0]" and "2.5  to 7"
  score 0; numbers are unsigned, "2." reads as 2.0; several spans in one answer: the last one counts;
- TimeZero: a reversed span ("7 to 2") is kept as written, so its overlap is 0 and so is its reward;
  VideoChat-R1 L92-93: a reversed span is rejected (reward 0);
- L116-119: IoU = max(0, min(ends) − max(starts)) / (max(ends) − min(starts)), the hull as union;
- a zero hull (a zero-length answer equal to a zero-length truth): TimeZero L118-121 leaves `iou`
  unassigned, so it reuses the IoU of the batch's previous completion, or raises UnboundLocalError for
  the first one; every item here is a batch of its own, so it is the failure "official_crash", score 0;
  VideoChat-R1 L120-121 rewards it 1.0;
- the durations the rewards receive are unused (L109: the normalisation by duration is commented out).
Spans are continuous seconds, no frame grid: open or closed ends make no difference.
"""
from __future__ import annotations

import re
from typing import Any

from videoreasoner.answers.protocols.base import Comparison, ItemScore, Protocol, mean, scores_of

_BLOCK_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_SPAN_RE = re.compile(r"(\d+\.?\d*) (to|and) (\d+\.?\d*)", re.IGNORECASE)


def read_span(text: str, reject_reversed: bool) -> tuple[float, float] | None:
    """(start, end) seconds from the last span of the last answer block, or None."""
    blocks = _BLOCK_RE.findall(text)
    if not blocks:
        return None
    spans = _SPAN_RE.findall(blocks[-1])
    if not spans:
        return None
    start, end = float(spans[-1][0]), float(spans[-1][2])
    return None if reject_reversed and start > end else (start, end)


def reward(text: str, truth: list[float], zero_hull_reward: float | None, reject_reversed: bool) -> ItemScore:
    """The reward of one completion; zero_hull_reward None: the official code crashes there."""
    span = read_span(text, reject_reversed)
    if span is None:
        return ItemScore(0.0, {"span": None}, "unreadable")
    s, e = float(truth[0]), float(truth[1])
    overlap = max(0.0, min(span[1], e) - max(span[0], s))
    hull = max(span[1], e) - min(span[0], s)
    if hull > 0:
        return ItemScore(overlap / hull, {"span": list(span)})
    if zero_hull_reward is None:
        return ItemScore(0.0, {"span": list(span)}, "official_crash")
    return ItemScore(zero_hull_reward, {"span": list(span)})


def _timezero(record: dict, text: str, settings: dict) -> ItemScore:
    return reward(text, record["answer"], None, reject_reversed=False)


def _videochat(record: dict, text: str, settings: dict) -> ItemScore:
    return reward(text, record["answer"], 1.0, reject_reversed=True)


def _summary(items: list[dict], settings: dict) -> dict[str, Any]:
    return {"mean_reward": mean(scores_of(items)),
            "unreadable": sum(i["error"] == "unreadable" for i in items)}


_COMPARE = (Comparison("mIoU", "mean_reward", "per_type.temporal_grounding.mIoU"),)

TIMEZERO = Protocol(
    name="timezero",
    official="www-Ye/TimeZero src/open_r1/grpo_video.py @ a7c3523",
    problem_types=("temporal_grounding",),
    settings={},
    score_item=_timezero,
    summarize=_summary,
    comparisons=_COMPARE,
    summary="TimeZero's IoU reward: last '<a> to <b>' of the last answer block, reversed spans kept",
)

VIDEOCHAT_R1 = Protocol(
    name="videochat_r1",
    official="OpenGVLab/VideoChat-R1 src/open_r1/grpo_tg.py @ 73b2ea9",
    problem_types=("temporal_grounding",),
    settings={},
    score_item=_videochat,
    summarize=_summary,
    comparisons=_COMPARE,
    summary="VideoChat-R1's IoU reward: as TimeZero, reversed spans rejected, a zero hull rewarded 1",
)
