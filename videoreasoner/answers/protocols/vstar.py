"""`vstar`: V-STaR's evaluation of "when" (temporal IoU, R1@0.3/0.5/0.7), "where" (per-frame box IoU,
mAP@0.1…0.9) and the summaries AM and LGM (chain 1).

Read from V-STaR-Bench/V-STaR @ 1894682: eval.py (metrics) and inference_demo.py (how a model's raw
text becomes the `answer_temporal` / `answer_spatial` that eval.py reads). Reproduced quirks:
- the whole completion is read, <think> included (no answer-tag handling anywhere);
- inference_demo.py L118-121: a temporal answer is the text's numbers (`\\b\\d+(?:\\.\\d+)?\\b`: unsigned,
  "2.5s" reads as 2) and only a text with EXACTLY two numbers gives a span: several numbers in one
  sentence, or any number in the reasoning, give no span (IoU 0);
- eval.py L67-87: a reversed span is not reordered (its overlap is clipped at 0, the hull stays), and a
  zero hull scores 0; the hull max(ends) − min(starts) is the union;
- inference_demo.py L173-215: boxes are the first ```json fenced block, else the greedy span from the
  first "[" or "{" to the last "]" or "}"; single quotes become double quotes; a list of dicts is
  merged; a list of [key, box] pairs becomes a dict; when json fails (a bare list of four numbers does,
  at the pair step) brackets are balanced (L124-146) and a list comes back as a list, which holds no
  frame key, so it scores 0; nothing readable scores 0;
- inference_demo.py L155-171: `denormalize_bbox` is defined but never called, so boxes are compared in
  the coordinates the model wrote. Our ground truth is normalised to [0, 1], which is what our models
  are taught to write;
- eval.py L126-156: a ground-truth box is looked up by the exact string of its timestamp (a whole
  second as "2", else e.g. "2.5"); a frame without a predicted box scores 0; a frame's value may hold
  several boxes, and the best IoU counts (L113-124); a malformed box scores 0; mAP@θ counts IoU >= θ;
- eval.py L90-111: box IoU with no corner ordering (a reversed box has a negative area) and 0 for an
  empty union;
- eval.py L378-384: AM = (acc + m_tIoU + m_vIoU) / 3 and LGM = −⅓ Σ ln(1 − x); a component equal to 1
  makes math.log raise there: LGM is then None here, with the note "official_crash".
What is not reproduced: the VQA accuracy comes from an LLM judge (Qwen2.5-72B rating 0-3, correct at
>= 2, eval.py L35-64, L214-228). With setting vqa: strict, the answer types (multiple_choice,
numerical, free_form, ocr, regression) are scored by the strict verifiers instead and their mean is
`acc`; the metrics say so. Temporal items are temporal_grounding answers and the span of
spatio-temporal answers; spatial items are spatial_grounding answers (one frame) and the boxes of
spatio-temporal answers, as in the strict summaries. Spans are continuous seconds (no frame grid).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from videoreasoner.answers.format import ANSWER_TYPES
from videoreasoner.answers.protocols.base import Comparison, ItemScore, Protocol, mean
from videoreasoner.answers.verifiers import verify

GROUNDING = ("temporal_grounding", "spatial_grounding", "spatio_temporal_grounding")
R1 = (0.3, 0.5, 0.7)
AP = (0.1, 0.3, 0.5, 0.7, 0.9)
_NUMBER_RE = re.compile(r"\b\d+(?:\.\d+)?\b")
_FENCED_RE = re.compile(r"```json\s*\n(\[.*?\]|\{.*?\})\s*\n```", re.DOTALL)
_BRACKETED_RE = re.compile(r"(\[[\s\S]*\]|\{[\s\S]*\})", re.DOTALL)


def read_span(text: str) -> list[float]:
    """[start, end] when the text holds exactly two numbers, else []."""
    numbers = _NUMBER_RE.findall(text)
    return [float(numbers[0]), float(numbers[1])] if len(numbers) == 2 else []


def temporal_iou(truth: list[float], pred: list[float]) -> float:
    if len(pred) != 2:
        return 0.0
    overlap = max(0.0, min(truth[1], pred[1]) - max(truth[0], pred[0]))
    hull = max(truth[1], pred[1]) - min(truth[0], pred[0])
    return overlap / hull if hull > 0 else 0.0


def _balanced(text: str) -> str:
    """Missing brackets added: closers appended, or openers prepended when closers are in excess."""
    for opener, closer in (("[", "]"), ("{", "}")):
        gap = text.count(opener) - text.count(closer)
        text = text + closer * gap if gap > 0 else opener * -gap + text
    return text


def read_boxes(text: str) -> Any:
    """What the inference script stores as answer_spatial: a dict (frame key -> box(es)), a list, or None."""
    found = _FENCED_RE.search(text) or _BRACKETED_RE.search(text)
    if not found:
        return None
    raw = found.group(1).strip().replace("'", '"')
    try:
        value = json.loads(raw)
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            value = {k: v for part in value for k, v in part.items()}
        if isinstance(value, list):
            return {str(pair[0]): pair[1] for pair in value}
        return dict(value) if isinstance(value, dict) else None
    except Exception:  # noqa: BLE001 - the official code catches everything here
        try:
            value = json.loads(_balanced(raw))
        except Exception:  # noqa: BLE001
            return None
        return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else None


def box_iou(truth: list[float], pred: Any) -> float:
    """IoU without corner ordering; 0 for a malformed box or an empty union."""
    if not isinstance(pred, (list, tuple)) or len(pred) != 4:
        return 0.0
    inter = max(0, min(truth[2], pred[2]) - max(truth[0], pred[0])) * \
        max(0, min(truth[3], pred[3]) - max(truth[1], pred[1]))
    union = (truth[2] - truth[0]) * (truth[3] - truth[1]) + (pred[2] - pred[0]) * (pred[3] - pred[1]) - inter
    return inter / union if union > 0 else 0.0


def best_box_iou(truth: list[float], value: Any) -> float:
    """The best IoU over the boxes a frame's value holds (one box, or a list of boxes); 0 on failure."""
    try:
        if not value:
            return 0.0
        boxes = [value] if isinstance(value[0], (int, float)) and len(value) == 4 else value
        return max(box_iou(truth, b) for b in boxes)
    except Exception:  # noqa: BLE001 - the official code catches everything here
        return 0.0


def timestamp_key(seconds: float) -> str:
    """The string a ground-truth timestamp is looked up by: whole seconds as "2", else "2.5"."""
    t = float(seconds)
    return str(int(t)) if t.is_integer() else str(t)


def spatial_metrics(truth: dict[str, list[float]], pred: Any) -> tuple[list[float], float]:
    """(AP at each threshold of AP, mean IoU) over the ground-truth frames {timestamp key: box}."""
    if not pred:
        return [0.0] * len(AP), 0.0
    ious = [best_box_iou(box, pred[key]) if key in pred else 0.0 for key, box in truth.items()]
    return [mean([float(i >= t) for i in ious]) or 0.0 for t in AP], mean(ious) or 0.0


def score_item(record: dict, text: str, settings: dict) -> ItemScore:
    ptype, answer = record["problem_type"], record["answer"]
    if ptype in ANSWER_TYPES:
        score = verify(record, text).score
        return ItemScore(score, {"acc": score})
    details: dict[str, Any] = {}
    if ptype in ("temporal_grounding", "spatio_temporal_grounding"):
        truth = answer if ptype == "temporal_grounding" else answer["span"]
        details["tiou"] = temporal_iou([float(truth[0]), float(truth[1])], read_span(text))
    if ptype in ("spatial_grounding", "spatio_temporal_grounding"):
        boxes = {timestamp_key(answer["time"]): answer["box"]} if ptype == "spatial_grounding" else \
            {timestamp_key(float(t)): b for t, b in answer["boxes"].items()}
        details["aps"], details["viou"] = spatial_metrics(boxes, read_boxes(text))
    return ItemScore(details.get("viou", details.get("tiou", 0.0)), details)


def _lgm(parts: list[float | None]) -> float | None:
    if None in parts or any(p >= 1 for p in parts):
        return None
    return -sum(math.log(1 - p) for p in parts) / 3


def summarize(items: list[dict], settings: dict) -> dict[str, Any]:
    tious = [i["details"]["tiou"] for i in items if "tiou" in i["details"]]
    spatial = [i["details"] for i in items if "viou" in i["details"]]
    acc = mean([i["details"]["acc"] for i in items if "acc" in i["details"]])
    m_tiou, m_viou = mean(tious), mean([d["viou"] for d in spatial])
    out: dict[str, Any] = {"acc": acc, "acc_source": f"{settings['vqa']} verifiers (official: LLM judge)",
                           "m_tIoU": m_tiou, "m_vIoU": m_viou}
    out.update({f"R1@{t}": mean([float(x >= t) for x in tious]) for t in R1})
    out.update({f"mAP@{t}": mean([d["aps"][k] for d in spatial]) for k, t in enumerate(AP)})
    parts = [acc, m_tiou, m_viou]
    out["AM"] = None if None in parts else sum(parts) / 3
    out["LGM"] = _lgm(parts)
    if out["AM"] is not None and out["LGM"] is None:
        out["LGM_note"] = "official_crash: math.log(0) at eval.py L382"
    return out


PROTOCOL = Protocol(
    name="vstar",
    official="V-STaR-Bench/V-STaR eval.py, inference_demo.py @ 1894682",
    problem_types=(*ANSWER_TYPES, *GROUNDING),
    settings={"vqa": "strict"},
    choices={"vqa": ("strict",)},
    score_item=score_item,
    summarize=summarize,
    comparisons=(Comparison("m_tIoU", "m_tIoU", "summary.m_tIoU"),
                 Comparison("m_vIoU", "m_vIoU", "summary.m_vIoU"),
                 Comparison("AM", "AM", "summary.AM"),
                 Comparison("LGM", "LGM", "summary.LGM")),
    summary="V-STaR: exactly two numbers make a span, JSON boxes keyed by whole seconds, AM/LGM",
)
