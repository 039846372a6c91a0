"""Charades-STA annotation lines: `vid start end##sentence` → temporal_grounding records.

`start` and `end` are seconds; the video is `{video_root}/{vid}{video_ext}` (`video_ext` is an optional
key of the source entry, default ".mp4"). The answer is `[start, end]` in seconds, rounded to the
millisecond, read as the project's half-open span [start, end) (videoreasoner/answers/spans.py).
Charades-STA's spans are continuous moments, not frame ranges, and are scored by continuous temporal
IoU, which does not depend on whether the ends are open or closed, so they are kept as published.
Charades-STA has spans running past the end of their video: `end` is clipped to the probed duration
and counted (`clipped_end` in the summary); a span that is empty after clipping, reversed or negative
is a malformed entry (ingest `on_error`). Ids are `<name>:<vid>@<line>`.
"""
from __future__ import annotations

from collections.abc import Iterator

from videoreasoner.data.importers.common import each_entry, number, probe_video, read_lines, record, seconds, video_ref
from videoreasoner.core.schema import Record, RecordError

QUESTION = "When does the following happen in the video: '{sentence}'?"


def load(entry: dict) -> Iterator[Record]:
    ext = entry.get("video_ext", ".mp4")
    return each_entry(entry, read_lines(entry), lambda where, line: _line(entry, ext, where, line))


def _line(entry: dict, ext: str, where: str, line: str) -> Record:
    head, sep, sentence = line.partition("##")
    if not sep:
        raise RecordError(where, "sentence", "no '##' separator (expected 'vid start end##sentence')")
    parts = head.split()
    if len(parts) != 3:
        raise RecordError(where, "vid start end", f"expected three values before '##', got {head!r}")
    vid = parts[0]
    start, end = number(parts[1], where, "start"), number(parts[2], where, "end")
    sentence = sentence.strip().rstrip(".").strip()
    if not sentence:
        raise RecordError(where, "sentence", "empty sentence")
    if start < 0 or end <= start:
        raise RecordError(where, "end", f"expected 0 <= start < end, got {start} .. {end}")
    video = video_ref(entry, vid + ext, where, "vid")
    info = probe_video(video, where, "vid")
    if end > info.duration:
        entry["counters"]["clipped_end"] += 1
        end = info.duration
    if end <= start:
        raise RecordError(where, "start", f"{start} s is not before the video's end ({info.duration:g} s)")
    lineno = where.rsplit(":", 1)[1]
    span = [seconds(start), min(seconds(end), info.duration)]
    return record(entry, where, f"{vid}@{lineno}", video, info, problem_type="temporal_grounding",
                  question=QUESTION.format(sentence=sentence), answer=span)
