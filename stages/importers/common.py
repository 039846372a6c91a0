"""Pieces every importer shares: locating and probing videos, tags, options, typed answers, splits.

An importer receives a normalised source entry (built by `stages.ingest.normalise_entry`) with:
`name`, `format`, `path` (annotation file, as written in params: relative to `root` or absolute),
`video_root` (as written, default the annotation file's directory), `root` (the workspace root),
`label` (the record `source`: name, or name@version), `counters` (a Counter the importer bumps for
skipped or adjusted entries; it lands in the summary), and the optional keys of its format.
Errors are `RecordError(where, field, problem)` with `where` = "file[index]", "file['key']" or
"file:line", so a message reads e.g. "data/raw/x.json[17]: field 'solution': no <answer> tag".
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stages.schema import SPLITS, Record, RecordError, make_record, option_letter
from stages.video_io import VideoError, VideoInfo, probe

TIME_DECIMALS = 3  # seconds are rounded to the millisecond
_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
OPTION_LINE = re.compile(r"\s*\(?([A-Z])\s*[.):]\s*(.*\S)\s*", re.S)
_LETTER_ANSWER = re.compile(r"\(?([A-Z])\)?(?:\s*[.):]\s*.*)?", re.S)


def annotation_file(entry: dict) -> Path:
    return Path(entry["root"]) / entry["path"]


def load_json(entry: dict) -> Any:
    """The annotation file parsed as JSON; bad JSON names the file and line."""
    path = entry["path"]
    try:
        with open(annotation_file(entry), encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def read_lines(entry: dict) -> Iterator[tuple[str, str]]:
    """(where, text) for each non-blank line, where = "file:line" (1-based)."""
    with open(annotation_file(entry), encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield f"{entry['path']}:{lineno}", line.rstrip("\n")


def json_items(entry: dict, data: Any, keyed: bool = False) -> Iterator[tuple[str, Any, dict]]:
    """(where, key, item) for a JSON list (key = index) or, if `keyed`, a dict (key = its key)."""
    path = entry["path"]
    if isinstance(data, list):
        pairs = enumerate(data)
        fmt = "{path}[{key}]"
    elif keyed and isinstance(data, dict):
        pairs = data.items()
        fmt = "{path}[{key!r}]"
    else:
        expected = "a JSON list or object" if keyed else "a JSON list"
        raise RecordError(path, "(top level)", f"expected {expected}, got {type(data).__name__}")
    for key, item in pairs:
        where = fmt.format(path=path, key=key)
        if not isinstance(item, dict):
            raise RecordError(where, "(entry)", f"expected a JSON object, got {type(item).__name__}")
        yield where, key, item


def text_field(item: dict, field: str, where: str) -> str:
    """A required non-empty string field, stripped."""
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(where, field, "missing or not a non-empty string")
    return value.strip()


def number(value: Any, where: str, field: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RecordError(where, field, f"not a number: {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise RecordError(where, field, f"not a finite number: {value!r}")
    return out


def seconds(t: float) -> float:
    return round(float(t), TIME_DECIMALS)


def split_tags(text: str) -> tuple[str | None, str | None]:
    """(reasoning inside <think>, answer inside <answer>), each stripped, None where the tag is absent."""
    think, answer = _THINK.search(text), _ANSWER.search(text)
    return (think.group(1).strip() if think else None, answer.group(1).strip() if answer else None)


def parse_options(options: Any, where: str, field: str = "options") -> list[str]:
    """["A. red", "B. blue"] -> ["red", "blue"]; letters must run A, B, C, … in order."""
    if not isinstance(options, list) or len(options) < 2:
        raise RecordError(where, field, "expected a list of at least two options")
    texts = []
    for i, option in enumerate(options):
        match = OPTION_LINE.fullmatch(option) if isinstance(option, str) else None
        if not match:
            raise RecordError(where, field, f"option {i} is not 'X. text': {option!r}")
        if match.group(1) != option_letter(i):
            raise RecordError(where, field, f"option {i} has letter {match.group(1)}, "
                                            f"expected {option_letter(i)} (letters must be in order)")
        texts.append(match.group(2))
    return texts


def typed_answer(problem_type: str, text: str, options: list[str] | None, where: str, field: str) -> str:
    """The `answer` for the text-answer types: option letter, number as string, or text."""
    text = text.strip()
    if problem_type == "multiple_choice":
        match = _LETTER_ANSWER.fullmatch(text)
        if not match or not options or ord(match.group(1)) - ord("A") >= len(options):
            raise RecordError(where, field, f"not one of the option letters: {text!r}")
        return match.group(1)
    if problem_type in ("numerical", "regression"):
        number(text, where, field)
        return text
    if not text:
        raise RecordError(where, field, "empty answer")
    return text


def video_ref(entry: dict, rel: Any, where: str, field: str) -> tuple[str, Path]:
    """(path written to the record, path on disk) for a video named in the annotations.

    The record path is relative to the workspace root unless the video path or `video_root` is absolute.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise RecordError(where, field, "missing or not a video path")
    ref = os.path.normpath(rel if os.path.isabs(rel) else os.path.join(entry["video_root"], rel))
    return ref, Path(ref) if os.path.isabs(ref) else Path(entry["root"]) / ref


@functools.lru_cache(maxsize=65536)
def _probe(path: str, mtime_ns: int, size: int) -> VideoInfo:
    return probe(path, decode=False)


def probe_video(video: tuple[str, Path], where: str, field: str) -> VideoInfo:
    """Header probe of the video file (cached per file version); any failure names the entry."""
    try:
        stat = os.stat(video[1])
        return _probe(str(video[1]), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise RecordError(where, field, f"video file {video[1]} does not exist") from None
    except VideoError as exc:
        raise RecordError(where, field, str(exc)) from None


def hash_split(video: str, fractions: dict[str, float]) -> str:
    """Deterministic split from the video path: same video, same split, on every machine."""
    u = int.from_bytes(hashlib.sha256(video.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for split in ("val", "test"):
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return "train"


def assign_split(entry: dict, video: str, own: Any, where: str) -> str:
    """Fixed `split` of the entry, else hashed `split_fractions`, else the row's own split."""
    if entry.get("split"):
        return entry["split"]
    if entry.get("split_fractions") is not None:
        return hash_split(video, entry["split_fractions"])
    if own not in SPLITS:
        raise RecordError(where, "split", f"expected one of {', '.join(SPLITS)}, got {own!r}")
    return own


def record(entry: dict, where: str, native_id: Any, video: tuple[str, Path], info: VideoInfo | None = None,
           own_split: Any = None, source: str | None = None, **fields: Any) -> Record:
    """A schema record: id prefixed by the source name, split assigned, video facts from `info`;
    `source` defaults to the entry's label (name or name@version)."""
    fields.update(id=f"{entry['name']}:{native_id}", video=video[0], source=source or entry["label"],
                  split=assign_split(entry, video[0], own_split, where))
    if info is not None:
        fields.update(duration=info.duration, fps=info.fps, width=info.width, height=info.height)
    try:
        return make_record(**fields)
    except RecordError as exc:
        raise RecordError(where, exc.field, exc.problem) from None
