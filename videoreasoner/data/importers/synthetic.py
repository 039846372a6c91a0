"""The synthetic world's annotations.jsonl: already unified records; only ids, paths and source change.

Each row's `video` is relative to the annotation file's directory (data/raw/synthetic) and is rewritten
relative to the workspace root; the row keeps its own `split` unless the source entry sets one, and its
own `source` (the generator writes name and version, e.g. "synthetic-world/v1") unless the entry has a
`version` (then "<name>@<version>", as for other formats). Ids become "<name>:<row id>".
Durations are taken as written by the generator (the validate stage checks them against the files).
Multiple-choice options follow the letter-prefix rule of videoreasoner/data/importers/option_prefixes.py
(the world writes bare options, which are kept byte for byte; stripped rows are counted under
`stripped_option_prefixes`). For your own records use the `records` format, which also probes the videos.
"""
from __future__ import annotations

from collections.abc import Iterator

from videoreasoner.data.importers.common import each_entry, json_object, read_lines, record, video_ref
from videoreasoner.data.importers.option_prefixes import strip_option_prefixes
from videoreasoner.core.schema import Record, RecordError

_REPLACED = ("id", "video", "split", "source")


def load(entry: dict) -> Iterator[Record]:
    return each_entry(entry, read_lines(entry), lambda where, line: _row(entry, where, line))


def _row(entry: dict, where: str, line: str) -> Record:
    row = json_object(line, where)
    if not isinstance(row.get("id"), (str, int)) or row.get("id") == "":
        raise RecordError(where, "id", "missing or not a string")
    video = video_ref(entry, row.get("video"), where, "video")
    rest = {k: v for k, v in row.items() if k not in _REPLACED}
    stripped = False
    if row.get("problem_type") == "multiple_choice":
        options, stripped = strip_option_prefixes(row.get("options"), where)
        if stripped:  # bare options stay exactly as written
            rest["options"] = options
    source = row.get("source") if entry.get("version") is None else None
    rec = record(entry, where, row["id"], video, own_split=row.get("split"), source=source, **rest)
    if stripped:
        entry["counters"]["stripped_option_prefixes"] += 1
    return rec
