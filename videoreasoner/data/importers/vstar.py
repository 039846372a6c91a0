"""V-STaR's annotation file (format `vstar`): V_STaR_test.json, a JSON list; each item gives three records,
the "what", "when" and "where" of V-STaR's first chain.

Read from V-STaR-Bench/V-STaR: data/README.md (the annotation structure), inference_demo.py
(`find_video`: the video is `{vid}.mp4` anywhere under the video folder; `get_answer_spatial`: boxes are
asked for at the whole seconds from ceil(start) to floor(end), both ends included) and eval.py
(`calculate_spatial_metrics`: a ground-truth box is {"timestamp", "frame_index", "xmin", "ymin", "xmax",
"ymax"}, in pixels of the item's `width` x `height`; data/README.md writes the same box as
{"<timestamp>_<frame_index>": {"xmin", …}}, and both forms are read). An item: `vid`, `domain`, `fps`,
`width`, `height`, `frame_count`, `question`, `chain` ("<think>…</think>"), `object`, `answer`,
`temporal_question`, `timestamps` ([start, end], seconds), `spatial_question`, `spatial_question_2`,
`bboxes`. Here, with ids `<name>:<index in the file>/what|when|where`:
- what: free_form, `question` -> `answer` (text), with the chain's text as `reasoning`;
- when: temporal_grounding, `temporal_question` -> `timestamps` as published: a continuous moment,
  scored by continuous temporal IoU, which does not depend on open or closed ends (as Charades-STA);
- where: spatio_temporal_grounding, `spatial_question` -> {"span": …, "boxes": {"<t>": box}}, boxes
  normalised by the item's width and height and clipped to the frame. A tube's span is half-open with
  its box times inside it (videoreasoner/answers/spans.py), while V-STaR's last box lies at its end:
  the span is widened to [min(start, first box), max(end, last box + one frame of the probed file)),
  capped at the video's end, and such items are counted (`tube_span_widened` in the ingest summary).
The video is `{vid}{video_ext}` (entry option `video_ext`, default ".mp4") directly under `video_root`,
else the one file of that name in its subfolders (two are an error). `frame_count / fps` must agree with
the probed file within one frame (the file is the one annotated); `domain` and `object` go into `meta`.
V-STaR is a test set: give the source `split: test`.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from videoreasoner.core.schema import Record, RecordError
from videoreasoner.data.importers.common import (json_items, load_json, note_error, number, pixel_box,
                                                 probe_video, record, seconds, split_tags, text_field, video_ref)
from videoreasoner.video.decoding import VideoInfo

CORNERS = ("xmin", "ymin", "xmax", "ymax")


def load(entry: dict) -> Iterator[Record]:
    """The records of every item; a malformed item gives none of its three (its error noted)."""
    find = _video_finder(entry, entry.get("video_ext", ".mp4"))
    for where, index, item in json_items(entry, load_json(entry)):
        try:
            records = _build(entry, find, where, index, item)
        except RecordError as exc:
            note_error(entry, exc)
            continue
        yield from records


def _video_finder(entry: dict, ext: str) -> Callable[[str, str], str]:
    """(vid, where) -> the video's path relative to video_root; the subfolder index is built once, if needed."""
    index: dict[str, list[str]] = {}

    def find(vid: str, where: str) -> str:
        name = vid + ext
        root = os.path.join(entry["root"], entry["video_root"])
        if os.path.exists(os.path.join(root, name)) or not os.path.isdir(root):
            return name
        if not index:
            for folder, _, files in sorted(os.walk(root)):
                for file in sorted(files):
                    index.setdefault(file, []).append(os.path.relpath(os.path.join(folder, file), root))
            index.setdefault("", [])  # marks the index as built, even for an empty folder
        found = index.get(name, [])
        if len(found) > 1:
            raise RecordError(where, "vid", f"{name} is in {len(found)} folders under {entry['video_root']}: "
                                            f"{', '.join(found[:3])}")
        return found[0] if found else name  # missing: the probe names the file

    return find


def _box_list(raw: Any, where: str) -> list[tuple[float, list[float]]]:
    """(time in seconds, [xmin, ymin, xmax, ymax] in pixels) for each box of either layout."""
    if not isinstance(raw, list) or not raw:
        raise RecordError(where, "bboxes", "missing or not a non-empty list of boxes")
    out = []
    for i, box in enumerate(raw):
        field = f"bboxes[{i}]"
        if isinstance(box, dict) and "timestamp" in box:
            t, corners = box["timestamp"], box
        elif isinstance(box, dict) and len(box) == 1:  # {"<timestamp>_<frame_index>": {"xmin", …}}
            key, corners = next(iter(box.items()))
            t = str(key).rsplit("_", 1)[0]
        else:
            raise RecordError(where, field, f"expected {{timestamp, xmin, ymin, xmax, ymax}}, got {box!r}")
        if not isinstance(corners, dict) or not set(CORNERS) <= set(corners):
            raise RecordError(where, field, f"expected the corners {', '.join(CORNERS)}, got {corners!r}")
        out.append((number(t, where, f"{field}.timestamp"), [corners[c] for c in CORNERS]))
    return sorted(out, key=lambda pair: pair[0])


def _check_length(item: dict, info: VideoInfo, where: str) -> None:
    fps = number(item.get("fps"), where, "fps")
    frames = number(item.get("frame_count"), where, "frame_count")
    if fps <= 0:
        raise RecordError(where, "fps", f"expected a positive rate, got {fps!r}")
    if abs(frames / fps - info.duration) > 1 / info.fps + 1e-6:
        raise RecordError(where, "frame_count", f"{frames:g} frames at {fps:g} fps last {frames / fps:g} s but "
                                                f"the file lasts {info.duration:g} s ({info.path})")


def _build(entry: dict, find: Callable[[str, str], str], where: str, index: int, item: dict) -> list[Record]:
    vid = text_field(item, "vid", where)
    where = f"{where} ({vid})"
    video = video_ref(entry, find(vid, where), where, "vid")
    info = probe_video(video, where, "vid")
    _check_length(item, info, where)
    raw_span = item.get("timestamps")
    if not isinstance(raw_span, list) or len(raw_span) != 2:
        raise RecordError(where, "timestamps", f"expected [start, end] in seconds, got {raw_span!r}")
    start, end = (number(t, where, "timestamps") for t in raw_span)
    if not 0 <= start < end:
        raise RecordError(where, "timestamps", f"expected 0 <= start < end, got {raw_span!r}")
    size = (number(item.get("width"), where, "width"), number(item.get("height"), where, "height"))
    if min(size) <= 0:
        raise RecordError(where, "width", f"frame size must be positive, got {size}")
    boxes = {}
    for i, (t, corners) in enumerate(_box_list(item.get("bboxes"), where)):
        key = str(seconds(t))
        if key in boxes:
            raise RecordError(where, f"bboxes[{i}]", f"a second box at {key} s")
        boxes[key] = pixel_box(corners, "xyxy", size, where, f"bboxes[{i}]")
    times = [float(k) for k in boxes]
    tube = [seconds(min(start, times[0])), min(seconds(max(end, times[-1] + 1 / info.fps)), info.duration)]
    reasoning, _ = split_tags(item["chain"]) if isinstance(item.get("chain"), str) else (None, None)
    if reasoning is None and isinstance(item.get("chain"), str):
        reasoning = item["chain"].replace("<think>", "").strip() or None  # data/README.md: "<think>...<think>"
    meta = {k: item[k] for k in ("domain", "object") if item.get(k) is not None} or None

    def make(part: str, problem_type: str, question_field: str, answer: Any, **extra: Any) -> Record:
        return record(entry, where, f"{index}/{part}", video, info, problem_type=problem_type,
                      question=text_field(item, question_field, where), answer=answer, meta=meta, **extra)

    records = [
        make("what", "free_form", "question", text_field(item, "answer", where), reasoning=reasoning),
        make("when", "temporal_grounding", "temporal_question", [seconds(start), min(seconds(end), info.duration)]),
        make("where", "spatio_temporal_grounding", "spatial_question", {"span": tube, "boxes": boxes}),
    ]
    if tube != [seconds(start), seconds(end)]:  # counted once the item is known to be well formed
        entry["counters"]["tube_span_widened"] += 1
    return records
