"""Video-MME question rows (format `videomme`): parquet (the released videomme/test-00000-of-00001.parquet),
a JSON list, or JSON lines (a file ending in .jsonl) of the same rows.

Read from EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/videomme/utils.py (`videomme_doc_to_visual`,
`videomme_doc_to_text`, `videomme_process_results`) and BradyFU/Video-MME
evaluation/output_test_template.json. A row: `videoID` (the YouTube id: the video is
`{videoID}.mp4` under `video_root`; as lmms-eval does, `.MP4` and then `.mkv` are tried when it is
missing), `question_id` ("001-1"), `question`, `options` (["A. …", "B. …", "C. …", "D. …"]: the
letters are written in the options, and lmms-eval prints them as they are), `answer` (the letter),
`duration` ("short" | "medium" | "long": a length class, not seconds), `domain`, `sub_category`,
`task_type`, `video_id` ("001"). Here:
- the options must carry their letters in order, and the letters are stripped (the rule of
  videoreasoner/data/importers/option_prefixes.py, required), since the prompt writes its own;
- `task_type`, `domain`, `sub_category`, `video_id`, `videoID` and the length class (as
  `duration_class`: the record's `duration` is the probed file's seconds) go into `meta`;
- ids are `<name>:<question_id>`. Subtitles are not read.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq

from videoreasoner.core.schema import Record, RecordError
from videoreasoner.data.importers.common import (annotation_file, each_entry, json_items, load_json, parse_options,
                                                 probe_video, read_lines, record, text_field, typed_answer,
                                                 video_ref)

VIDEO_EXTS = (".mp4", ".MP4", ".mkv")  # lmms-eval's order
_META = {"task_type": "task_type", "domain": "domain", "sub_category": "sub_category", "video_id": "video_id",
         "videoID": "videoID", "duration": "duration_class"}


def _rows(entry: dict) -> list[dict] | Any:
    """The rows of the annotation file, by its suffix: .parquet, .jsonl, else a JSON list."""
    path = entry["path"]
    if path.endswith(".parquet"):
        try:
            return pq.read_table(annotation_file(entry)).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a file that is not parquet
            raise ValueError(f"{path}: not a readable parquet file ({exc})") from None
    if path.endswith(".jsonl"):
        rows = []
        for where, line in read_lines(entry):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        return rows
    return load_json(entry)


def load(entry: dict) -> Iterator[Record]:
    return each_entry(entry, json_items(entry, _rows(entry)), lambda *item: _item(entry, *item))


def _video_name(entry: dict, item: dict, where: str) -> str:
    vid = text_field(item, "videoID", where)
    for ext in VIDEO_EXTS:
        name = vid + ext
        if os.path.exists(video_ref(entry, name, where, "videoID").disk):
            return name
    return vid + VIDEO_EXTS[0]  # missing: the probe names the file


def _item(entry: dict, where: str, index: int, item: dict) -> Record:
    qid = item.get("question_id")
    if not isinstance(qid, str) or not qid.strip():
        raise RecordError(where, "question_id", f"missing or not text: {qid!r}")
    where = f"{where} ({qid})"
    options = parse_options(list(item["options"]) if isinstance(item.get("options"), (list, tuple)) else None,
                            where)
    answer = typed_answer("multiple_choice", text_field(item, "answer", where), options, where, "answer")
    video = video_ref(entry, _video_name(entry, item, where), where, "videoID")
    meta = {key: item[field] for field, key in _META.items() if item.get(field) is not None}
    return record(entry, where, qid.strip(), video, probe_video(video, where, "videoID"),
                  problem_type="multiple_choice", question=text_field(item, "question", where),
                  options=options, answer=answer, meta=meta)
