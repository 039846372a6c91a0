"""Pieces every importer shares: locating and probing videos, tags, options, typed answers, splits.

An importer receives a normalised source entry (built by `stages.ingest.normalise_entry`) with:
`name`, `format`, `path` (annotation file, as written in params: relative to `root` or absolute),
`video_root` (as written, default the annotation file's directory), `root` (the workspace root),
`label` (the record `source`: name, or name@version), `counters` (a Counter the importer bumps for
skipped or adjusted entries; it lands in the summary), and the optional keys of its format.
Errors are `RecordError(where, field, problem)` with `where` = "file[index]", "file['key']" or
"file:line", so a message reads e.g. "data/raw/x.json[17]: field 'solution': no <answer> tag".
A malformed entry does not stop its importer: `each_entry` notes its error (`note_error`: the entry's
`errors`, at most `max_errors` kept, and `n_errors`) and goes on; the ingest stage decides (on_error).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from videoreasoner.answers.parse import parse_number
from videoreasoner.core.schema import SPLITS, Record, RecordError, make_record
from videoreasoner.data.importers.option_prefixes import strip_option_prefixes
from videoreasoner.video.decoding import VideoError, VideoInfo, probe_cached

TIME_DECIMALS = 3  # seconds are rounded to the millisecond
BOX_DECIMALS = 4  # normalised box coordinates: 0.0001 of the frame side
BOX_FORMATS = ("xywh", "xyxy")
_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
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


def json_object(line: str, where: str) -> dict:
    """One JSON-lines row as a dict; not JSON, or not an object, is a RecordError naming the line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(where, "(line)", f"not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise RecordError(where, "(entry)", f"expected a JSON object, got {type(row).__name__}")
    return row


def note_error(entry: dict, exc: RecordError) -> None:
    """Count a malformed entry of the source; keep its error while fewer than `max_errors` are kept."""
    entry["n_errors"] = entry.get("n_errors", 0) + 1
    errors = entry.setdefault("errors", [])
    if entry.get("max_errors") is None or len(errors) < entry["max_errors"]:
        errors.append(exc)


def each_entry(entry: dict, items: Iterator[tuple], build: Callable[..., Record | None]) -> Iterator[Record]:
    """`build(*item)` for each item, skipping None; a RecordError is noted (`note_error`), not raised."""
    for item in items:
        try:
            rec = build(*item)
        except RecordError as exc:
            note_error(entry, exc)
            continue
        if rec is not None:
            yield rec


def json_items(entry: dict, data: Any, keyed: bool = False) -> Iterator[tuple[str, Any, dict]]:
    """(where, key, item) for a JSON list (key = index) or, if `keyed`, a dict (key = its key); an item
    that is not a JSON object is noted (`note_error`) and left out."""
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
            note_error(entry, RecordError(where, "(entry)", f"expected a JSON object, got {type(item).__name__}"))
            continue
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


def pixel_box(raw: object, fmt: str, size: tuple[float, float], where: str, field: str) -> list[float]:
    """One box in pixels (`fmt` "xywh": [x, y, w, h]; "xyxy": [x1, y1, x2, y2]) of a frame `size` =
    (width, height) -> [x1, y1, x2, y2] normalised to [0, 1], clipped to the frame; an empty box is an error."""
    if not isinstance(raw, list) or len(raw) != 4:
        raise RecordError(where, field, f"expected four numbers, got {raw!r}")
    a, b, c, d = (number(v, where, field) for v in raw)
    x1, y1, x2, y2 = (a, b, a + c, b + d) if fmt == "xywh" else (a, b, c, d)
    w, h = size
    box = [min(max(x1 / w, 0.0), 1.0), min(max(y1 / h, 0.0), 1.0),
           min(max(x2 / w, 0.0), 1.0), min(max(y2 / h, 0.0), 1.0)]
    box = [round(v, BOX_DECIMALS) for v in box]
    if not (box[0] < box[2] and box[1] < box[3]):
        raise RecordError(where, field, f"empty box after clipping to the frame: {raw!r} ({fmt})")
    return box


def split_tags(text: str) -> tuple[str | None, str | None]:
    """(reasoning inside <think>, answer inside <answer>), each stripped, None where the tag is absent."""
    think, answer = _THINK.search(text), _ANSWER.search(text)
    return (think.group(1).strip() if think else None, answer.group(1).strip() if answer else None)


def parse_options(options: Any, where: str, field: str = "options") -> list[str]:
    """["A. red", "B. blue"] -> ["red", "blue"]: options that must carry their letters, A, B, C, … in
    order (the rule of videoreasoner/data/importers/option_prefixes.py, required)."""
    return strip_option_prefixes(options, where, field, required=True)[0]


def typed_answer(problem_type: str, text: str, options: list[str] | None, where: str, field: str) -> str:
    """The `answer` for the text-answer types: option letter, number as string, or text."""
    text = text.strip()
    if problem_type == "multiple_choice":
        match = _LETTER_ANSWER.fullmatch(text)
        if not match or not options or ord(match.group(1)) - ord("A") >= len(options):
            raise RecordError(where, field, f"not one of the option letters: {text!r}")
        return match.group(1)
    if problem_type in ("numerical", "regression"):  # read as the verifiers read it ("1,000", "10,")
        if parse_number(text) is None:
            raise RecordError(where, field, f"not a single finite number: {text!r}")
        return text
    if not text:
        raise RecordError(where, field, "empty answer")
    return text


class VideoRef(NamedTuple):
    """A video named in the annotations: `record` (the record's `video`: relative to the workspace root,
    absolute where `video_root` is), `disk` (where it is opened) and `rel` (relative to `video_root`,
    POSIX, normalised: what the split hash reads, so moving a dataset never changes its splits)."""

    record: str
    disk: Path
    rel: str


def video_ref(entry: dict, name: Any, where: str, field: str) -> VideoRef:
    """The video `name` of an annotation, confined to the source's `video_root`.

    `name` is relative to `video_root` (an absolute name must lie inside it). A name that climbs out
    (`../../etc/passwd`) is a RecordError naming the entry and field: the file is never opened.
    Confinement is lexical: a symlink inside `video_root` is followed (DVC's symlink cache needs that).
    """
    if not isinstance(name, str) or not name.strip():
        raise RecordError(where, field, "missing or not a video path")
    if "\0" in name:
        raise RecordError(where, field, f"video path {name!r} contains a NUL character")
    video_root = entry["video_root"]
    if os.path.isabs(name):
        base = os.path.normpath(os.path.join(entry["root"], video_root))  # absolute: root is absolute or not
        rel = os.path.relpath(os.path.normpath(name), os.path.abspath(base))
    else:
        rel = os.path.normpath(name)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel) or rel == os.curdir:
        raise RecordError(where, field, f"video path {name!r} leaves the source's video_root {video_root!r}")
    ref = os.path.normpath(os.path.join(video_root, rel))
    return VideoRef(ref, Path(ref) if os.path.isabs(ref) else Path(entry["root"]) / ref,
                    PurePosixPath(*Path(rel).parts).as_posix())


def probe_video(video: VideoRef, where: str, field: str) -> VideoInfo:
    """Header probe of the video file (cached per file version); any failure names the entry."""
    if not os.path.exists(video.disk):
        raise RecordError(where, field, f"video file {video.disk} does not exist")
    try:
        return probe_cached(video.disk)
    except VideoError as exc:
        raise RecordError(where, field, str(exc)) from None


def split_key(video: VideoRef) -> str:
    """What a hashed split is drawn from: the video's path relative to its source's `video_root`.

    Never an absolute or workspace-relative path, so a dataset moved elsewhere keeps its splits. The
    source name is left out on purpose: sources sharing a video tree (Video-R1-260k and its COT-165k
    subset) must put a shared video in the same split, or `check_disjoint` stops the import."""
    return video.rel


def hash_split(key: str, fractions: dict[str, float]) -> str:
    """Deterministic split from a key (see `split_key`): same key, same split, on every machine."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for split in ("val", "test"):
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return "train"


def assign_split(entry: dict, video: VideoRef, own: Any, where: str) -> str:
    """Fixed `split` of the entry, else hashed `split_fractions`, else the row's own split."""
    if entry.get("split"):
        return entry["split"]
    if entry.get("split_fractions") is not None:
        return hash_split(split_key(video), entry["split_fractions"])
    if own not in SPLITS:
        raise RecordError(where, "split", f"expected one of {', '.join(SPLITS)}, got {own!r}")
    return own


def record(entry: dict, where: str, native_id: Any, video: VideoRef, info: VideoInfo | None = None,
           own_split: Any = None, source: str | None = None, **fields: Any) -> Record:
    """A schema record: id prefixed by the source name, split assigned, video facts from `info`;
    `source` defaults to the entry's label (name or name@version)."""
    fields.update(id=f"{entry['name']}:{native_id}", video=video.record, source=source or entry["label"],
                  split=assign_split(entry, video, own_split, where))
    if info is not None:
        fields.update(duration=info.duration, fps=info.fps, width=info.width, height=info.height)
    try:
        return make_record(**fields)
    except RecordError as exc:
        raise RecordError(where, exc.field, exc.problem) from None


class SourceErrors(RecordError):
    """Every malformed entry of one source (up to `max_errors` listed); `where`, `field` and `problem`
    are the first one's."""

    def __init__(self, entry: dict):
        errors, n = entry["errors"], entry["n_errors"]
        first = errors[0]
        self.where, self.field, self.problem, self.errors, self.n_errors = (
            first.where, first.field, first.problem, list(errors), n)
        shown = f"{len(errors)} listed" if len(errors) < n else "all listed"
        ValueError.__init__(self, f"{entry['path']}: {n} malformed entr{'y' if n == 1 else 'ies'} ({shown}):\n  "
                                  + "\n  ".join(str(e) for e in errors))


def raise_noted(entry: dict) -> None:
    """Raise `SourceErrors` if the importer noted any malformed entry (on_error: fail)."""
    if entry.get("n_errors"):
        raise SourceErrors(entry)
