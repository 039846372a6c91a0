"""The unified record schema: one JSON object per line, every stage reads and writes it.

Times are seconds; boxes are [x1, y1, x2, y2] normalised to [0, 1] of frame width and height.
Optional extensions used by this project: `fps`, `width`, `height` (of the video file, for the video
probe) and `meta` (a free dict: e.g. `kind` = "reasoning" | "perception", `task`, `source_index`).
"""
from __future__ import annotations

from typing import Any

PROBLEM_TYPES = (
    "multiple_choice",
    "numerical",
    "free_form",
    "ocr",
    "regression",
    "temporal_grounding",
    "spatial_grounding",
    "spatio_temporal_grounding",
)
SPLITS = ("train", "val", "test")
REQUIRED_FIELDS = ("id", "video", "duration", "problem_type", "question", "answer", "split", "source")
OPTIONAL_FIELDS = ("options", "reasoning", "fps", "width", "height", "meta")
ALL_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

Record = dict[str, Any]


class RecordError(ValueError):
    """A record (or a raw source entry) is malformed: the message names where and which field."""

    def __init__(self, where: str, field: str, problem: str):
        self.where, self.field, self.problem = where, field, problem
        super().__init__(f"{where}: field '{field}': {problem}")


def option_letter(index: int) -> str:
    """0 -> 'A', 1 -> 'B', ..."""
    return OPTION_LETTERS[index]


def make_record(**fields: Any) -> Record:
    """Build a record with fields in the canonical order, dropping optional fields that are None."""
    unknown = set(fields) - set(ALL_FIELDS)
    if unknown:
        raise RecordError(str(fields.get("id", "?")), sorted(unknown)[0], "not a schema field")
    missing = [f for f in REQUIRED_FIELDS if fields.get(f) is None]
    if missing:
        raise RecordError(str(fields.get("id", "?")), missing[0], "required field is missing")
    return {k: fields[k] for k in ALL_FIELDS if fields.get(k) is not None}
