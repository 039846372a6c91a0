"""Video-R1 JSON (Video-R1-260k.json for RL, Video-R1-COT-165k.json for SFT): a list of problems.

Each entry: `problem_id`, `problem` (question without options), `data_type` ("video" | "image"),
`problem_type` ("multiple choice", "numerical", "OCR", "free-form", "regression"), `options`
(["A. text", …], multiple choice only; other types carry [] and it is ignored), `process`
("<think>…</think>", COT file only → `reasoning`), `solution` ("<answer>B</answer>" → `answer`),
`path` (video path relative to `video_root`, e.g. "./NeXT-QA/…mp4"), `data_source`.
Image entries are skipped and counted (`skipped_image` in the summary): this pipeline trains on video.
Ids are `<name>:<index in the file>` (problem_id is kept in `meta`); the duration comes from probing.
"""
from __future__ import annotations

from collections.abc import Iterator

from videoreasoner.data.importers.common import (each_entry, json_items, load_json, parse_options, probe_video,
                                                 record, split_tags, text_field, typed_answer, video_ref)
from videoreasoner.core.schema import Record, RecordError

PROBLEM_TYPES = {
    "multiple choice": "multiple_choice",
    "numerical": "numerical",
    "OCR": "ocr",
    "free-form": "free_form",
    "regression": "regression",
}


def load(entry: dict) -> Iterator[Record]:
    return each_entry(entry, json_items(entry, load_json(entry)), lambda *item: _item(entry, *item))


def _item(entry: dict, where: str, index: int, item: dict) -> Record | None:
    data_type = item.get("data_type", "video")
    if data_type == "image":
        entry["counters"]["skipped_image"] += 1
        return None
    if data_type != "video":
        raise RecordError(where, "data_type", f"expected 'video' or 'image', got {data_type!r}")
    problem_type = PROBLEM_TYPES.get(item.get("problem_type"))
    if problem_type is None:
        raise RecordError(where, "problem_type", f"unknown problem type {item.get('problem_type')!r} "
                                                 f"(known: {', '.join(PROBLEM_TYPES)})")
    options = parse_options(item.get("options"), where) if problem_type == "multiple_choice" else None
    _, answer_text = split_tags(text_field(item, "solution", where))
    if answer_text is None:
        raise RecordError(where, "solution", "no <answer> tag")
    reasoning = None
    if item.get("process") is not None:
        process = text_field(item, "process", where)
        think, _ = split_tags(process)
        reasoning = think if think is not None else process
    video = video_ref(entry, item.get("path"), where, "path")
    meta = {k: item[k] for k in ("problem_id", "data_source") if item.get(k) is not None}
    return record(entry, where, index, video, probe_video(video, where, "path"),
                  problem_type=problem_type, question=text_field(item, "problem", where),
                  options=options, reasoning=reasoning or None, meta=meta or None,
                  answer=typed_answer(problem_type, answer_text, options, where, "solution"))
