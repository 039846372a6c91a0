"""HC-STVG-style JSON (v1/v2): one described person tube per video → spatio_temporal_grounding records.

The file is a dict keyed by video file name (relative to `video_root`), or a list of entries naming
it in `video` / `vid`. Each entry: `caption` (v2) or `English` (v1) or `sentence`; `st_frame`, the
frame of the first box (counted from `frame_base`, default 1 as in HC-STVG); `bbox`, one box per
frame from `st_frame` on, in pixels, `[x, y, w, h]` (`box_format: xywh`, the HC-STVG layout,
default) or `[x1, y1, x2, y2]` (`box_format: xyxy`); optional `ed_frame` (must agree with the box
count, inclusive or exclusive); the annotation frame size as `width`/`height` or `img_size`/`img_hw`
([h, w]), else the probed video size. Boxes are clipped to the frame and normalised to [0, 1].
Frame k (0-based) shows at k / fps (fps probed from the file), so the answer is
{"span": [first / fps, (last + 1) / fps], "boxes": {"<k / fps>": [x1, y1, x2, y2], …}} in seconds,
rounded to the millisecond (the end is capped at the probed duration). The span is half-open
(videoreasoner/answers/spans.py): it holds the frames first..last, the last box's frame included and
the frame after it not, so its frame set is exactly the annotated frames.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from videoreasoner.data.importers.common import (BOX_FORMATS, each_entry, json_items, load_json, number, pixel_box,
                                                 probe_video, record, seconds, video_ref)
from videoreasoner.core.schema import Record, RecordError

QUESTION = "When and where in the video does the following happen: '{sentence}'?"


def _caption(item: dict, where: str) -> str:
    for field in ("caption", "English", "sentence"):
        if isinstance(item.get(field), str) and item[field].strip():
            return item[field].strip().rstrip(".").strip()
    raise RecordError(where, "caption", "missing caption (looked for caption, English, sentence)")


def _frame_size(item: dict, where: str, probed: tuple[int, int]) -> tuple[float, float]:
    """(width, height) in pixels of the frame the boxes were drawn on."""
    if "width" in item or "height" in item:
        size = (number(item.get("width"), where, "width"), number(item.get("height"), where, "height"))
    else:
        field = "img_size" if "img_size" in item else "img_hw"
        hw = item.get(field)
        if hw is None:
            return float(probed[0]), float(probed[1])
        if not isinstance(hw, list) or len(hw) != 2:
            raise RecordError(where, field, "expected [height, width]")
        size = (number(hw[1], where, field), number(hw[0], where, field))
    if min(size) <= 0:
        raise RecordError(where, "width", f"frame size must be positive, got {size}")
    return size


def load(entry: dict) -> Iterator[Record]:
    fmt = entry.get("box_format", "xywh")
    if fmt not in BOX_FORMATS:
        raise RecordError(entry["path"], "box_format", f"expected one of {BOX_FORMATS}, got {fmt!r}")
    base = entry.get("frame_base", 1)
    if base not in (0, 1):
        raise RecordError(entry["path"], "frame_base", f"expected 0 or 1, got {base!r}")
    ext = entry.get("video_ext", ".mp4")
    return each_entry(entry, json_items(entry, load_json(entry), keyed=True),
                      lambda *item: _item(entry, fmt, base, ext, *item))


def _item(entry: dict, fmt: str, base: int, ext: str, where: str, key: Any, item: dict) -> Record:
    name = key if isinstance(key, str) else item.get("video", item.get("vid"))
    if isinstance(name, str) and not PurePath(name).suffix:
        name += ext
    sentence = _caption(item, where)
    raw_boxes = item.get("bbox")
    if not isinstance(raw_boxes, list) or not raw_boxes:
        raise RecordError(where, "bbox", "missing or not a non-empty list of boxes")
    st = item.get("st_frame")
    if not isinstance(st, int) or st < base:
        raise RecordError(where, "st_frame", f"expected an integer >= {base}, got {st!r}")
    ed = item.get("ed_frame")
    if ed is not None and ed not in (st + len(raw_boxes) - 1, st + len(raw_boxes)):
        raise RecordError(where, "ed_frame", f"{ed!r} disagrees with st_frame {st} and "
                                             f"{len(raw_boxes)} boxes")
    video = video_ref(entry, name, where, "video")
    info = probe_video(video, where, "video")
    first, last = st - base, st - base + len(raw_boxes) - 1
    if last >= info.n_frames:
        raise RecordError(where, "st_frame", f"tube ends at frame {last}, the video has "
                                             f"{info.n_frames} frames")
    size = _frame_size(item, where, (info.width, info.height))
    boxes = {str(seconds((first + i) / info.fps)): pixel_box(raw, fmt, size, where, f"bbox[{i}]")
             for i, raw in enumerate(raw_boxes)}
    span = [seconds(first / info.fps), min(seconds((last + 1) / info.fps), info.duration)]
    native_id = PurePath(name).stem if isinstance(key, str) else key
    return record(entry, where, native_id, video, info, problem_type="spatio_temporal_grounding",
                  question=QUESTION.format(sentence=sentence),
                  answer={"span": span, "boxes": boxes})
