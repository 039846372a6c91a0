"""HC-STVG spatio-temporal grounding as TubeDETR (`tubedetr_hcstvg`) and CG-STVG (`cgstvg_hcstvg`)
evaluate it: m_tIoU, m_vIoU, vIoU@0.3/0.5 and gt_vIoU, over frame indices.

Both evaluators read a model's tensors, not text: a span in frames ("sted") and one box per frame. The
adapter here (ours, not official): the answer is read with the strict parser; a time t becomes the
frame round(t × fps) (fps: setting `fps`, default the record's own); the ground truth's
tube_start_frame / tube_end_frame are the frames of its span's two ends, as HC-STVG annotates them;
the box of a frame, ground truth or prediction, is the one annotated nearest in time (ties: earlier);
the clip has round(duration × fps) frames. An answer that cannot be read scores 0 ("unreadable").

TubeDETR, antoyang/TubeDETR datasets/hcstvg_eval.py @ d70c0ee, reproduced quirks:
- L56-60: the clip's rate is taken as frame_count / 20 (HC-STVG clips last 20 s: setting clip_seconds)
  and frames are kept at `sample_fps` 5 of it; a sampling rate above 1 fails the assert
  ("official_crash");
- L61-68: candidate frames are range(0, frame_count − 1): the last frame is never evaluated;
- L69-75: more than video_max_len (200) frames are thinned to 200;
- L82: the ground-truth tube is half-open, tube_start_frame <= f < tube_end_frame;
- L117-128: tIoU on frame numbers: 0 when min_end <= max_start (a reversed or zero-length span), else
  overlap / (gt length + pred length − overlap);
- L137-148: the vIoU denominator is the kept frames in [min_start, max_end): the hull, so a gap between
  disjoint spans counts; the numerator sums box IoU over kept ground-truth frames in the overlap;
- L158-178: box IoU (util/box_ops.py np_box_iou) with no corner ordering; an empty union gives NaN
  or inf there (recorded here as "official_nan", counted 0);
- L180-194: vIoU@R counts vIoU > R (strict); gt_vIoU averages IoU over the kept ground-truth frames;
- L264-289: every number is a mean over videos.
CG-STVG, HengLan/CGSTVG datasets/evaluation/hcstvg_eval.py @ f062d84 (with datasets/hcstvg.py),
reproduced quirks:
- hcstvg.py L184-185, L225-234: the ground-truth bound [tube_start_frame, min(tube_end_frame, last
  frame)] is INCLUSIVE, and boxes are kept for every frame of it, while the evaluator (L62-73, L83-88)
  treats the same bound as half-open: the last ground-truth frame is never in the overlap, yet it is
  in gt_vIoU's denominator (L120);
- L83-85: the vIoU denominator is every frame number in [min_start, max_end) (the hull, no sampling);
- L94-98: a ground-truth frame without a predicted box is skipped (counted 0), no error;
- L62-73, L108-117: tIoU and vIoU@R as TubeDETR.
"""
from __future__ import annotations

import math
from typing import Any

from videoreasoner.answers.format import extract_answer, parse_answer
from videoreasoner.answers.protocols.base import Comparison, ItemScore, Protocol, mean, scores_of

THRESHOLDS = (0.3, 0.5)


def frame(t: float, fps: float) -> int:
    return int(round(float(t) * fps))


def nearest_box(boxes: dict[str, list[float]], t: float) -> list[float] | None:
    """The box annotated nearest to time t (seconds; ties: the earlier time); None without boxes."""
    if not boxes:
        return None
    return min(((float(k), v) for k, v in boxes.items()), key=lambda kv: (abs(kv[0] - t), kv[0]))[1]


def np_style_iou(a: list[float], b: list[float]) -> float:
    """Box IoU as util/box_ops.py computes it: areas with no corner ordering, overlap clipped at 0;
    NaN for 0/0."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union == 0:
        return math.nan if inter == 0 else math.copysign(math.inf, inter)
    return inter / union


def frame_tiou(gt: list[int], pred: list[int]) -> float:
    max_start, min_end = max(gt[0], pred[0]), min(gt[1], pred[1])
    if min_end <= max_start:
        return 0.0
    inter = min_end - max_start
    return inter / ((gt[1] - gt[0]) + (pred[1] - pred[0]) - inter)


def _read(record: dict, text: str, fps: float) -> tuple[list[int], dict] | None:
    """(sted in frames, boxes by time) of the answer, or None; a time too large to be a frame number
    (t × fps overflows) is unreadable too, not a crash of the whole scoring."""
    parsed = parse_answer("spatio_temporal_grounding", extract_answer(text, strict=True))
    if parsed is None:
        return None
    try:
        return [frame(parsed["span"][0], fps), frame(parsed["span"][1], fps)], parsed["boxes"]
    except OverflowError:
        return None


def _fps(record: dict, settings: dict) -> float:
    fps = settings.get("fps") or record.get("fps")
    if not fps or fps <= 0:
        raise ValueError("HC-STVG scoring needs the record's fps or the setting fps")
    return float(fps)


def _item(tiou: float, viou: float, gt_viou: float, sted: list[int]) -> ItemScore:
    if not (math.isfinite(viou) and math.isfinite(gt_viou)):
        return ItemScore(0.0, {"tiou": tiou, "viou": 0.0, "gt_viou": 0.0, "pred_sted": sted}, "official_nan")
    return ItemScore(viou, {"tiou": tiou, "viou": viou, "gt_viou": gt_viou, "pred_sted": sted})


def tubedetr_frames(frame_count: int, settings: dict) -> list[int] | None:
    """The frames TubeDETR evaluates (L56-75), or None where its sampling assert fails."""
    rate = settings["sample_fps"] / (frame_count / settings["clip_seconds"])
    if rate > 1:
        return None
    kept = [0]
    for f in range(0, frame_count - 1):
        if int(kept[-1] * rate) < int(f * rate):
            kept.append(f)
    if len(kept) > settings["video_max_len"]:
        kept = [kept[(j * len(kept)) // settings["video_max_len"]] for j in range(settings["video_max_len"])]
    return kept


def _tubedetr(record: dict, text: str, settings: dict) -> ItemScore:
    fps, answer = _fps(record, settings), record["answer"]
    gt = [frame(answer["span"][0], fps), frame(answer["span"][1], fps)]
    kept = tubedetr_frames(max(1, frame(record["duration"], fps)), settings)
    zero = {"tiou": 0.0, "viou": 0.0, "gt_viou": 0.0}
    if kept is None:
        return ItemScore(0.0, zero, "official_crash")
    read = _read(record, text, fps)
    if read is None or not read[1]:
        return ItemScore(0.0, zero, "unreadable")
    sted, boxes = read
    min_start, max_end = min(gt[0], sted[0]), max(gt[1], sted[1])
    max_start, min_end = max(gt[0], sted[0]), min(gt[1], sted[1])
    gt_frames = [f for f in kept if gt[0] <= f < gt[1]]
    hull = [f for f in kept if min_start <= f < max_end]
    viou = gt_viou = 0.0
    for f in gt_frames:
        iou = np_style_iou(nearest_box(boxes, f / fps), nearest_box(answer["boxes"], f / fps))
        viou += iou if max_start <= f < min_end else 0.0
        gt_viou += iou
    return _item(frame_tiou(gt, sted), viou / max(len(hull), 1), gt_viou / max(len(gt_frames), 1), sted)


def _cgstvg(record: dict, text: str, settings: dict) -> ItemScore:
    fps, answer = _fps(record, settings), record["answer"]
    last = max(1, frame(record["duration"], fps)) - 1
    gt = [frame(answer["span"][0], fps), min(frame(answer["span"][1], fps), last)]
    read = _read(record, text, fps)
    if read is None:
        return ItemScore(0.0, {"tiou": 0.0, "viou": 0.0, "gt_viou": 0.0}, "unreadable")
    sted, boxes = read
    min_start, max_end = min(gt[0], sted[0]), max(gt[1], sted[1])
    max_start, min_end = max(gt[0], sted[0]), min(gt[1], sted[1])
    gt_frames = range(gt[0], gt[1] + 1)
    viou = gt_viou = 0.0
    for f in gt_frames:
        pred_box = nearest_box(boxes, f / fps)
        if pred_box is None:  # L94-98: skipped, no error
            continue
        iou = np_style_iou(pred_box, nearest_box(answer["boxes"], f / fps))
        viou += iou if max_start <= f < min_end else 0.0
        gt_viou += iou
    hull = max(0, max_end - min_start)
    return _item(frame_tiou(gt, sted), viou / max(hull, 1), gt_viou / max(len(gt_frames), 1), sted)


def summarize(items: list[dict], settings: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"tiou": mean(scores_of(items, key="tiou")), "viou": mean(scores_of(items, key="viou")),
                           "gt_viou": mean(scores_of(items, key="gt_viou"))}
    for t in THRESHOLDS:
        out[f"viou@{t}"] = mean([float(v > t) for v in scores_of(items, key="viou")])
        out[f"gt_viou@{t}"] = mean([float(v > t) for v in scores_of(items, key="gt_viou")])
    return out


_COMPARE = (Comparison("m_tIoU", "tiou", "per_type.spatio_temporal_grounding.m_tIoU"),
            Comparison("m_vIoU", "viou", "per_type.spatio_temporal_grounding.m_vIoU"),
            Comparison("vIoU@0.5", "viou@0.5", "per_type.spatio_temporal_grounding.vIoU@0.5"))

TUBEDETR = Protocol(
    name="tubedetr_hcstvg",
    official="antoyang/TubeDETR datasets/hcstvg_eval.py @ d70c0ee",
    problem_types=("spatio_temporal_grounding",),
    settings={"fps": None, "sample_fps": 5.0, "clip_seconds": 20.0, "video_max_len": 200},
    score_item=_tubedetr,
    summarize=summarize,
    comparisons=_COMPARE,
    summary="TubeDETR on HC-STVG: frames kept at 5 fps of a 20-s clip, half-open tube, hull denominator",
)

CGSTVG = Protocol(
    name="cgstvg_hcstvg",
    official="HengLan/CGSTVG datasets/evaluation/hcstvg_eval.py @ f062d84",
    problem_types=("spatio_temporal_grounding",),
    settings={"fps": None},
    score_item=_cgstvg,
    summarize=summarize,
    comparisons=_COMPARE,
    summary="CG-STVG on HC-STVG: inclusive ground-truth bound read as half-open, every frame counted",
)
