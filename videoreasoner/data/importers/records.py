"""The project's own record schema (format `records`): one JSON object per line, for your own videos.

Each row has the fields of videoreasoner/core/schema.py:
- `id` (text or integer): the record id becomes "<name>:<id>", `name` being the source's; an id that
  already starts with "<name>:" is kept as it is, so a validated split can be imported again;
- `video`: the file, relative to the source's `video_root` (default: the annotation file's directory);
- `problem_type`, `question`, `answer` (its shape per type: README "Bring your own data"), `options`
  (multiple_choice only), optional `reasoning` and `meta`;
- `split` (train, val or test): used when the source entry sets neither `split` nor `split_fractions`;
- optional `duration` (seconds), `fps`, `width`, `height` (display pixels).
`source` is the source entry's label (its name, or name@version), as for every imported format; a
row's own `source` is replaced.
The video is probed (PyAV header, cached per file version) and `duration`, `fps`, `width`, `height` are
filled from it. A value the row gives that disagrees with the file is an error naming the line, the
record and the field, by the rule the validate stage applies (videoreasoner/data/record_checks.py
`check_video`: duration within one frame, fps within 0.1 %, size exact).
Options follow the letter-prefix rule of videoreasoner/data/importers/option_prefixes.py: options
written "A. a rabbit", "(A) a rabbit" or "A) a rabbit", letters in order, are stripped to "a rabbit" and
the record is counted under `stripped_option_prefixes` in reports/ingest/summary.json; a prefix that
does not match its position ("B. x" as the first option) is an error. A multiple-choice answer is the
option letter ("B"; "(B)" and "B. text" are read as B); a numerical or regression answer may be a JSON
number, kept as its text. Grounding answers are taken as written: the validate stage checks them
against the probed duration.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from videoreasoner.core.schema import Record, RecordError
from videoreasoner.data.importers.common import (each_entry, json_object, probe_video, read_lines, record, typed_answer,
                                                 video_ref)
from videoreasoner.data.importers.option_prefixes import strip_option_prefixes
from videoreasoner.data.record_checks import check_video

DURATION_TOLERANCE_FRAMES = 1.0  # the validate stage's default (params validate.duration_tolerance_frames)
_TEXT_ANSWERS = ("multiple_choice", "numerical", "regression", "free_form", "ocr")
_REPLACED = ("id", "video", "split", "source", "duration", "fps", "width", "height")


def load(entry: dict) -> Iterator[Record]:
    return each_entry(entry, read_lines(entry), lambda where, line: _row(entry, where, line))


def _native_id(entry: dict, row: dict, where: str) -> str:
    raw = row.get("id")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or str(raw).strip() == "":
        raise RecordError(where, "id", f"missing or not a string or integer: {raw!r}")
    text = str(raw).strip()
    prefix = f"{entry['name']}:"
    return text[len(prefix):] if text.startswith(prefix) else text


def _answer(row: dict, options: list[str] | None, where: str):
    problem_type, answer = row.get("problem_type"), row.get("answer")
    if problem_type in ("numerical", "regression") and isinstance(answer, (int, float)) \
            and not isinstance(answer, bool):
        answer = json.dumps(answer)  # 3 -> "3", 2.5 -> "2.5": the schema keeps numbers as text
    if problem_type in _TEXT_ANSWERS:
        if not isinstance(answer, str):
            raise RecordError(where, "answer", f"expected text for a {problem_type} answer, got {answer!r}")
        return typed_answer(problem_type, answer, options, where, "answer")
    return answer


def _row(entry: dict, where: str, line: str) -> Record:
    row = json_object(line, where)
    native_id = _native_id(entry, row, where)
    where = f"{where} (id {native_id})"
    options, stripped = row.get("options"), False
    if row.get("problem_type") == "multiple_choice":  # options of other types: the validate gate names them
        options, stripped = strip_option_prefixes(options, where)
    video = video_ref(entry, row.get("video"), where, "video")
    info = probe_video(video, where, "video")
    problem = check_video({k: row.get(k) for k in ("duration", "fps", "width", "height")}, info,
                          DURATION_TOLERANCE_FRAMES)
    if problem is not None:
        raise RecordError(where, *problem)
    rest = {k: v for k, v in row.items() if k not in _REPLACED}
    rest.update(options=options, answer=_answer(row, options, where))
    rec = record(entry, where, native_id, video, info, own_split=row.get("split"), **rest)
    if stripped:
        entry["counters"]["stripped_option_prefixes"] += 1
    return rec
