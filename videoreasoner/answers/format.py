"""The answer format: prompts, SFT targets, and reading answers back. The one place it is defined.

A model answers `<think>reasoning</think><answer>final answer</answer>` (exact lowercase tags). What
goes inside <answer>, by problem type (videoreasoner/core/schema.py gives the ground-truth shapes):

| problem type              | text inside <answer>                                             |
|---------------------------|------------------------------------------------------------------|
| multiple_choice           | the option letter: `B`                                           |
| numerical, regression     | the number: `3`, `2.5` (no thousands separators)                 |
| free_form, ocr            | the text                                                         |
| temporal_grounding        | start and end in seconds: `2.5 to 7.0`                           |
| spatial_grounding         | the box, normalised to [0, 1]: `[0.12, 0.20, 0.50, 0.61]`        |
| spatio_temporal_grounding | span, then `time: box` pairs: `2.0 to 4.0; 2.0: [0.10, 0.20, 0.30, 0.40]; 3.0: [...]` |

Times are written with at most TIME_DECIMALS decimals (at least one: `7.0`), box coordinates with
exactly BOX_DECIMALS decimals (videoreasoner/answers/canonical.py, shared with the parser), so a target
is exact for ground truth on that grid and otherwise within half a unit of the last decimal (0.005 of
the frame side, sub-pixel on 112-px frames). For spatial_grounding the time of the box is part of the
question, so only the box is written.

Spans, in targets and in answers, are half-open (videoreasoner/answers/spans.py): "1.0 to 3.0" is
[1.0, 3.0), the end being the first moment the thing is gone, so in a 4-fps clip it names the frames at
1.0 … 2.75 s, and a tube's `time: box` pairs lie in [start, end).
"""
from __future__ import annotations

import json
from typing import Any

from videoreasoner.answers.canonical import format_box, format_time
from videoreasoner.answers.parse import (
    parse_box,
    parse_choice,
    parse_number,
    parse_span,
    parse_text,
    parse_tube,
)
from videoreasoner.core.schema import OPTION_LETTERS, PROBLEM_TYPES, RecordError

PROMPT_VERSION = "1"
MAX_COMPLETION_CHARS = 65536

ANSWER_TYPES = ("multiple_choice", "numerical", "free_form", "ocr", "regression")
GROUNDING_TYPES = ("temporal_grounding", "spatial_grounding", "spatio_temporal_grounding")

THINK_INSTRUCTION = (
    "First think step by step inside <think> </think> tags. "
    "Then give only the final answer inside <answer> </answer> tags."
)
_BOX_WORDS = "[x1, y1, x2, y2] as fractions between 0 and 1 of the frame width and height"
ANSWER_INSTRUCTIONS = {
    "multiple_choice": "Inside <answer>, write only the letter of the correct option ({letters}).",
    "numerical": "Inside <answer>, write only the number, for example <answer>3</answer>.",
    "regression": "Inside <answer>, write only your numeric estimate, for example <answer>4.2</answer>.",
    "free_form": "Inside <answer>, write a short answer in words.",
    "ocr": "Inside <answer>, write exactly the text shown in the video.",
    "temporal_grounding": (
        "Inside <answer>, write the start and end time in seconds, for example <answer>2.5 to 7.0</answer>."
    ),
    "spatial_grounding": (
        f"Inside <answer>, write the bounding box {_BOX_WORDS}, "
        "for example <answer>[0.12, 0.20, 0.50, 0.61]</answer>."
    ),
    "spatio_temporal_grounding": (
        "Inside <answer>, write the start and end time in seconds, then for moments inside that span "
        f"the time and the bounding box {_BOX_WORDS}, separated by semicolons, for example "
        "<answer>2.0 to 4.0; 2.0: [0.10, 0.20, 0.30, 0.40]; 3.0: [0.15, 0.20, 0.35, 0.40]</answer>."
    ),
}

_OPEN, _CLOSE = "<answer>", "</answer>"
# The four tags of the format, in order of appearance.
FORMAT_TAGS = ("<think>", "</think>", _OPEN, _CLOSE)


def _record_id(record: dict) -> str:
    return str(record.get("id", "?"))


# ---------------------------------------------------------------------------------------------------
# Prompts and targets
# ---------------------------------------------------------------------------------------------------

def build_prompt(record: dict) -> str:
    """The user-turn text: question, the options block (multiple choice), then the format instruction."""
    ptype = record.get("problem_type")
    if ptype not in PROBLEM_TYPES:
        raise RecordError(_record_id(record), "problem_type", f"unknown problem type {ptype!r}")
    question = str(record.get("question") or "").strip()
    if not question:
        raise RecordError(_record_id(record), "question", "empty or missing question")
    parts = [question]
    instruction = ANSWER_INSTRUCTIONS[ptype]
    if ptype == "multiple_choice":
        options = record.get("options") or []
        if len(options) < 2 or len(options) > len(OPTION_LETTERS):
            raise RecordError(_record_id(record), "options", "multiple_choice needs 2 to 26 options")
        parts.append("Options:\n" + "\n".join(
            f"{OPTION_LETTERS[i]}. {str(text).strip()}" for i, text in enumerate(options)
        ))
        instruction = instruction.format(letters=_letters_phrase(len(options)))
    parts.append(f"{THINK_INSTRUCTION} {instruction}")
    return "\n".join(parts)


def _letters_phrase(n: int) -> str:
    """'A or B', 'A, B, C or D'."""
    letters = list(OPTION_LETTERS[:n])
    return f"{', '.join(letters[:-1])} or {letters[-1]}"


def format_span(span: list[float]) -> str:
    """A [start, end] span in seconds as '2.5 to 7.0'."""
    if len(span) != 2:
        raise ValueError(f"a span needs [start, end], got {span!r}")
    return f"{format_time(span[0])} to {format_time(span[1])}"


def _format_number(answer: Any) -> str:
    value = parse_number(str(answer))
    if value is None:
        raise ValueError(f"not a single number: {answer!r}")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_answer(problem_type: str, answer: Any) -> str:
    """The canonical text inside <answer> for a ground-truth answer (table in the module docstring)."""
    answer = coerce_answer(problem_type, answer)
    if problem_type == "multiple_choice":
        letter = str(answer).strip().upper()
        if len(letter) != 1 or letter not in OPTION_LETTERS:
            raise ValueError(f"not an option letter: {answer!r}")
        return letter
    if problem_type in ("numerical", "regression"):
        return _format_number(answer)
    if problem_type in ("free_form", "ocr"):
        return " ".join(str(answer).split())
    if problem_type == "temporal_grounding":
        return format_span(answer)
    if problem_type == "spatial_grounding":
        return format_box(answer["box"])
    if problem_type == "spatio_temporal_grounding":
        boxes = sorted(answer.get("boxes", {}).items(), key=lambda kv: float(kv[0]))
        pairs = [f"{format_time(float(t))}: {format_box(b)}" for t, b in boxes]
        return "; ".join([format_span(answer["span"]), *pairs])
    raise ValueError(f"unknown problem type {problem_type!r}")


def format_target(record: dict) -> str:
    """The SFT target: '<think>{reasoning}</think><answer>{format_answer(...)}</answer>'."""
    reasoning = str(record.get("reasoning") or "").strip()
    if not reasoning:
        raise RecordError(_record_id(record), "reasoning", "an SFT target needs a non-empty reasoning")
    try:
        answer = format_answer(record["problem_type"], record["answer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(_record_id(record), "answer", str(exc)) from None
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


def format_direct_target(record: dict) -> str:
    """A target without reasoning, '<answer>{format_answer(...)}</answer>' (perception-alignment items);
    extract_answer reads it back, verify_format does not accept it (no <think>)."""
    try:
        answer = format_answer(record["problem_type"], record["answer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(_record_id(record), "answer", str(exc)) from None
    return f"<answer>{answer}</answer>"


def coerce_answer(problem_type: str, answer: Any) -> Any:
    """Ground truth in its native shape. Grounding answers given as JSON text (datasets store one type
    per column) are decoded; other answers are text, so a number is turned into its string.
    """
    if problem_type in GROUNDING_TYPES and isinstance(answer, str):
        return json.loads(answer)
    if problem_type not in GROUNDING_TYPES and not isinstance(answer, str):
        return str(answer)
    return answer


# ---------------------------------------------------------------------------------------------------
# Reading a completion back
# ---------------------------------------------------------------------------------------------------

def extract_answer(text: str, strict: bool = True) -> str | None:
    """The stripped content of the answer block, or None.

    strict=True: the text holds exactly one `<answer>` and one `</answer>`, and that block is outside
    every <think> block (an unclosed <think> hides everything after it). Several answer tags, none, an
    answer only inside <think>, an empty answer or a text over MAX_COMPLETION_CHARS give None.
    strict=False (for models that ignore the format): the last complete answer block outside <think>;
    if the text has no answer tag at all, the text after the last </think> (or the whole text).
    """
    if not isinstance(text, str) or len(text) > MAX_COMPLETION_CHARS:
        return None
    if strict and (text.count(_OPEN) != 1 or text.count(_CLOSE) != 1):
        return None
    outside = " ".join(outside_blocks(text, "<think>", "</think>"))
    blocks = tag_blocks(outside, _OPEN, _CLOSE)
    if strict:
        return (blocks[0].strip() or None) if len(blocks) == 1 else None
    if blocks:
        return blocks[-1].strip() or None
    if _OPEN in text or _CLOSE in text:
        return None
    tail = text.rsplit("</think>", 1)[-1] if "</think>" in text else outside
    return tail.strip() or None


def tag_blocks(text: str, open_tag: str, close_tag: str) -> list[str]:
    """Contents of the complete open…close blocks, left to right (nearest close; linear time)."""
    blocks, pos = [], 0
    while (start := text.find(open_tag, pos)) >= 0:
        end = text.find(close_tag, start + len(open_tag))
        if end < 0:
            break
        blocks.append(text[start + len(open_tag):end])
        pos = end + len(close_tag)
    return blocks


def outside_blocks(text: str, open_tag: str, close_tag: str) -> list[str]:
    """The pieces of text outside open…close blocks; an unclosed block runs to the end of the text
    (an unclosed <think> is still thinking)."""
    pieces, pos = [], 0
    while (start := text.find(open_tag, pos)) >= 0:
        pieces.append(text[pos:start])
        end = text.find(close_tag, start + len(open_tag))
        if end < 0:
            return pieces
        pos = end + len(close_tag)
    pieces.append(text[pos:])
    return pieces


def parse_answer(problem_type: str, text: str | None, options: list[str] | None = None) -> Any:
    """Parse the text inside <answer> for `problem_type`; None when it cannot be read unambiguously.

    Returns: option letter (multiple_choice), float (numerical, regression), str (free_form, ocr),
    [start, end] seconds (temporal_grounding), [x1, y1, x2, y2] (spatial_grounding),
    {"span": [s, e], "boxes": {"<t>": box}} (spatio_temporal_grounding). See videoreasoner/answers/parse.py
    for what is lenient and what is strict.
    """
    if text is None:
        return None
    if problem_type == "multiple_choice":
        return parse_choice(text, options)
    if problem_type in ("numerical", "regression"):
        return parse_number(text)
    if problem_type in ("free_form", "ocr"):
        return parse_text(text)
    if problem_type == "temporal_grounding":
        return parse_span(text)
    if problem_type == "spatial_grounding":
        return parse_box(text)
    if problem_type == "spatio_temporal_grounding":
        return parse_tube(text)
    raise ValueError(f"unknown problem type {problem_type!r}")
