"""`lmms_eval_charades`: lmms-eval's Charades-STA temporal grounding metric (temporal_grounding only).

Read from EvolvingLMMs-Lab/lmms-eval, lmms_eval/tasks/charades_sta/utils.py @ 75571cf (the in-harness
metric, `_temporal_grounding_compute_metrics`; the older standalone eval_tvg.py replaced an unreadable
answer by [gt_end + 10, gt_end + 20] instead of scoring 0). Reproduced quirks, by line:
- whole completion read, <think> included: no answer-tag handling (the parser sees all of the text);
- L86: lower-cased; the prompt's example "a specific example is : 20.8 - 30.0 seconds" removed; every
  "to" replaced by "-", inside words too ("into" → "in-", "total" → "-tal");
- L87: "sentences" are split at "!", "?" and newlines only, never at a full stop;
- L89-92: candidate sentences are those containing a keyword as a substring ("start", "end", "happen",
  …; "attend" and "legend" count); with none, every sentence is a candidate;
- L95-105: first, mm:ss / hh:mm:ss ranges ("0:18 - 0:23", hyphen or en dash) in the first candidate
  sentence that has one;
- L107-112: else number ranges "a - b" in the first candidate sentence that has one;
- L114-122: else clock times of all candidates, paired in order;
- L124-131: else the FIRST number of each candidate sentence, paired across sentences (an odd count
  drops the last); the number pattern's word boundaries read "2.5s" as 2 (it backtracks to "2");
- L133-138: else ranges with an "s" unit ("2s - 5s");
- L140-143: only the first pair counts; a reversed pair is reordered (a pair with end == start is
  kept as it is); several numbers in one sentence: the first "a - b" range wins;
- L155-161: IoU = max(min_end − max_start, 0) / (max_end − min_start): the hull, not the union, and 0
  when the hull is empty (a zero-length prediction equal to a zero-length truth scores 0);
- L164-167: the ground truth is used as given (never reordered);
- L181-183: no pair → IoU 0 and a "bad prediction"; L187-190: any exception → IoU 0;
- L195-198: IOU@3/5/7 count IoU >= 0.3/0.5/0.7; every number is a percentage (× 100).
Spans are continuous seconds: no frame grid, so open or closed ends make no difference here.
"""
from __future__ import annotations

import re
from typing import Any

from videoreasoner.answers.protocols.base import Comparison, ItemScore, Protocol, mean, scores_of

_EXAMPLE = "a specific example is : 20.8 - 30.0 seconds"
_KEYWORDS = ("starts", "ends", "happens in", "start time", "end time", "start", "end", "happen")
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?"
_CLOCK_RANGE_RE = re.compile(rf"\b({_CLOCK})\s*[–-]\s*({_CLOCK})\b")
_RANGE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*[–-]\s*(\d+(?:\.\d+)?)")
_NUMBER_RE = re.compile(r"\b(\d+(?:\.\d+)?)\b")
_CLOCK_RE = re.compile(rf"\b({_CLOCK})\b")
_UNIT_RANGE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*s?\s*[–-]\s*(\d+(?:\.\d+)?)\s*s?")
THRESHOLDS = (0.3, 0.5, 0.7)


def clock_seconds(text: str) -> float:
    """'mm:ss' or 'hh:mm:ss' (fractions allowed in every part) as seconds."""
    parts = [float(p) for p in text.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + parts[2] if len(parts) == 3 else parts[0] * 60 + parts[1]


def _pairs(times: list[float]) -> list[list[float]]:
    even = times[: len(times) // 2 * 2]
    return [[even[i], even[i + 1]] for i in range(0, len(even), 2)]


def _first_sentence_ranges(candidates: list[str], pattern: re.Pattern, convert) -> list[list[float]]:
    for sentence in candidates:
        if found := pattern.findall(sentence):
            return [[convert(a), convert(b)] for a, b in found]
    return []


def extract_span(text: str) -> list[float] | None:
    """The one [start, end] lmms-eval reads from a completion (seconds), or None (a bad prediction)."""
    text = text.lower().replace(_EXAMPLE, "").replace("to", "-")
    sentences = re.split(r"[!?\n]", text)
    candidates = [s for s in sentences if any(k in s for k in _KEYWORDS)] or sentences
    spans = (_first_sentence_ranges(candidates, _CLOCK_RANGE_RE, clock_seconds)
             or _first_sentence_ranges(candidates, _RANGE_RE, float)
             or _pairs([clock_seconds(t) for s in candidates for t in _CLOCK_RE.findall(s)])
             or _pairs([float(found[0]) for s in candidates if (found := _NUMBER_RE.findall(s))])
             or _first_sentence_ranges(candidates, _UNIT_RANGE_RE, float))
    if not spans:
        return None
    start, end = spans[0]
    return [start, end] if end > start else [end, start]


def hull_iou(truth: list[float], pred: list[float]) -> float:
    """Overlap over the hull of the two spans (seconds), 0 when the hull has no length."""
    hull = max(truth[1], pred[1]) - min(truth[0], pred[0])
    return 0.0 if hull <= 0 else max(min(truth[1], pred[1]) - max(truth[0], pred[0]), 0) / hull


def score_item(record: dict, text: str, settings: dict) -> ItemScore:
    truth = [float(record["answer"][0]), float(record["answer"][1])]
    try:
        span = extract_span(text)
    except ValueError:  # a pathological number the official code would also fail on (L187-190)
        return ItemScore(0.0, {"span": None}, "exception")
    if span is None:
        return ItemScore(0.0, {"span": None}, "bad_prediction")
    return ItemScore(hull_iou(truth, span), {"span": span})


def summarize(items: list[dict], settings: dict) -> dict[str, Any]:
    ious = scores_of(items)
    out: dict[str, Any] = {f"IOU@{int(t * 10)}": 100 * sum(i >= t for i in ious) / len(ious) for t in THRESHOLDS}
    out["mIOU"] = 100 * mean(ious)
    out["bad_predictions"] = sum(i["error"] is not None for i in items)
    return out


PROTOCOL = Protocol(
    name="lmms_eval_charades",
    official="EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/charades_sta/utils.py @ 75571cf",
    problem_types=("temporal_grounding",),
    settings={},
    score_item=score_item,
    summarize=summarize,
    comparisons=(Comparison("mIoU", "mIOU", "per_type.temporal_grounding.mIoU", 100.0),
                 Comparison("R1@0.5", "IOU@5", "per_type.temporal_grounding.R1@0.5", 100.0)),
    summary="Charades-STA R1@{0.3,0.5,0.7} and mIoU in percent, spans read from the whole text",
)
