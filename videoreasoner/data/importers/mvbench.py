"""MVBench task files (format `mvbench`): one JSON list of multiple-choice questions per task.

Read from OpenGVLab/Ask-Anything video_chat2/mvbench.ipynb (`data_list`, `MVBench_dataset.qa_template`,
`__getitem__`). An item is {"video": file under the task's video folder, "question", "candidates":
[texts], "answer": the text of the right candidate}; the tasks the notebook marks `bound` also carry
"start" and "end" (seconds: the question is about that stretch of the video), and one task
(episodic_reasoning) names folders of frames instead of video files. Here:
- one source entry per task file, with the task's video folder (the notebook's prefix) as `video_root`;
  the task name is the entry option `task` (default: the file name without its extension), kept in
  `meta.task`;
- the options are the candidates (the prompt writes the letters, as the notebook's "(A) …" does), under
  the letter-prefix rule of videoreasoner/data/importers/option_prefixes.py; the answer is the letter of
  the candidate whose text equals `answer`. The notebook takes the last equal candidate and writes the
  letter "@" when none is equal; here an answer that is not exactly one candidate is an error;
- an item with `start`/`end` is skipped and counted (`skipped_clip_bound` in the ingest summary): a
  record has no clip window, and asking about one stretch while showing the whole video would score the
  model on frames the question is not about;
- a `video` that is a folder (frames) is skipped and counted (`skipped_frame_folder`): the pipeline
  decodes video files.
Ids are `<name>:<index in the file>`; duration, fps and size come from probing the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from videoreasoner.core.schema import Record, RecordError, option_letter
from videoreasoner.data.importers.common import (each_entry, json_items, load_json, probe_video, record,
                                                 text_field, video_ref)
from videoreasoner.data.importers.option_prefixes import strip_option_prefixes


def load(entry: dict) -> Iterator[Record]:
    task = entry.get("task", PurePath(entry["path"]).stem)
    if not isinstance(task, str) or not task.strip():
        raise RecordError(entry["path"], "task", f"expected a task name, got {task!r}")
    return each_entry(entry, json_items(entry, load_json(entry)), lambda *item: _item(entry, task, *item))


def _answer_letter(candidates: list[Any], answer: Any, where: str) -> str:
    equal = [i for i, c in enumerate(candidates) if isinstance(c, str) and isinstance(answer, str)
             and c.strip() == answer.strip()]
    if len(equal) != 1:
        found = "no candidate" if not equal else f"{len(equal)} candidates"
        raise RecordError(where, "answer", f"{answer!r} equals {found} (it must be the text of exactly one)")
    return option_letter(equal[0])


def _item(entry: dict, task: str, where: str, index: int, item: dict) -> Record | None:
    if item.get("start") is not None or item.get("end") is not None:
        entry["counters"]["skipped_clip_bound"] += 1
        return None
    video = video_ref(entry, item.get("video"), where, "video")
    if os.path.isdir(video.disk):
        entry["counters"]["skipped_frame_folder"] += 1
        return None
    candidates = item.get("candidates")
    options, _ = strip_option_prefixes(candidates, where, "candidates")
    answer = _answer_letter(candidates, item.get("answer"), where)
    return record(entry, where, index, video, probe_video(video, where, "video"),
                  problem_type="multiple_choice", question=text_field(item, "question", where),
                  options=options, answer=answer, meta={"task": task})
