"""The answer format: prompt snapshot, targets, extraction and the lenient-but-not-gullible parsers."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from videoreasoner.answers.canonical import format_time
from videoreasoner.answers.format import (
    MAX_COMPLETION_CHARS,
    PROMPT_VERSION,
    build_prompt,
    extract_answer,
    format_answer,
    format_direct_target,
    format_target,
    parse_answer,
)
from videoreasoner.core.atomic import read_jsonl, write_text
from videoreasoner.core.schema import PROBLEM_TYPES, RecordError

SNAPSHOTS = Path(__file__).parent / "snapshots"
OPTIONS = ["red", "blue", "green", "yellow"]


def records() -> list[dict]:
    return read_jsonl(SNAPSHOTS / "sample_records.jsonl")


# --------------------------------------------------------------------------------------------- prompts

def _render_prompts() -> str:
    blocks = [f"PROMPT_VERSION {PROMPT_VERSION}"]
    for record in records():
        blocks.append(f"===== {record['problem_type']} ({record['id']}) =====\n{build_prompt(record)}")
    return "\n\n".join(blocks) + "\n"


def test_prompt_snapshot():
    path = SNAPSHOTS / "prompts.txt"
    rendered = _render_prompts()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        same_version = old.split("\n", 1)[0] == rendered.split("\n", 1)[0]
        assert old == rendered or not same_version, (
            f"the prompt text changed but PROMPT_VERSION is still {PROMPT_VERSION}: bump it in "
            "videoreasoner/answers/format.py, then regenerate"
        )
        write_text(path, rendered)
    assert path.exists(), "no prompt snapshot: run `UPDATE_SNAPSHOTS=1 pytest tests/test_answer_format.py`"
    assert rendered == path.read_text(encoding="utf-8"), (
        "the prompt text changed. If deliberate, bump PROMPT_VERSION in videoreasoner/answers/format.py and "
        "regenerate with `UPDATE_SNAPSHOTS=1 pytest tests/test_answer_format.py`, then review the diff "
        "of tests/snapshots/prompts.txt"
    )


def test_snapshot_covers_every_problem_type():
    assert {r["problem_type"] for r in records()} == set(PROBLEM_TYPES)


def test_prompt_lists_options_with_letters_and_one_instruction():
    prompt = build_prompt(next(r for r in records() if r["problem_type"] == "multiple_choice"))
    assert "A. red\nB. blue\nC. green\nD. yellow" in prompt
    assert prompt.count("<think>") == 1 and "(A, B, C or D)" in prompt


@pytest.mark.parametrize("bad", [
    {"problem_type": "multiple_choice", "question": "q", "options": ["only one"]},
    {"problem_type": "multiple_choice", "question": "q"},
    {"problem_type": "riddle", "question": "q"},
    {"problem_type": "numerical", "question": "  "},
])
def test_prompt_rejects_malformed_records(bad):
    with pytest.raises(RecordError):
        build_prompt({"id": "x", **bad})


# --------------------------------------------------------------------------------------------- targets

@pytest.mark.parametrize("ptype, answer, text", [
    ("multiple_choice", "b", "B"),
    ("numerical", "3", "3"),
    ("numerical", "3.0", "3"),
    ("numerical", "1,234", "1234"),
    ("regression", 4.25, "4.25"),
    ("free_form", "  It   bounces ", "It bounces"),
    ("ocr", "STOP here", "STOP here"),
    ("temporal_grounding", [2.5, 7], "2.5 to 7.0"),
    ("temporal_grounding", [1 / 3, 2.25], "0.33 to 2.25"),
    ("spatial_grounding", {"time": 2.0, "box": [0.12, 0.2, 0.5, 0.61]}, "[0.12, 0.20, 0.50, 0.61]"),
    ("spatial_grounding", '{"time": 2.0, "box": [0.12, 0.2, 0.5, 0.61]}', "[0.12, 0.20, 0.50, 0.61]"),
    ("spatio_temporal_grounding", {"span": [1, 2], "boxes": {"2": [0, 0, 1, 1], "1.0": [0.1, 0.1, 0.2, 0.2]}},
     "1.0 to 2.0; 1.0: [0.10, 0.10, 0.20, 0.20]; 2.0: [0.00, 0.00, 1.00, 1.00]"),
])
def test_format_answer(ptype, answer, text):
    assert format_answer(ptype, answer) == text


@pytest.mark.parametrize("ptype, answer", [
    ("multiple_choice", "AB"), ("multiple_choice", "1"), ("numerical", "three or four"),
    ("temporal_grounding", [1.0]), ("spatial_grounding", {"box": [0, 0, 1]}), ("riddle", "x"),
])
def test_format_answer_rejects_bad_ground_truth(ptype, answer):
    with pytest.raises((ValueError, KeyError)):
        format_answer(ptype, answer)


def test_format_target_and_missing_reasoning():
    record = records()[0]
    assert format_target(record) == "<think>The ball looks blue.</think><answer>B</answer>"
    with pytest.raises(RecordError, match="reasoning"):
        format_target({**record, "reasoning": "  "})
    with pytest.raises(RecordError, match="answer"):
        format_target({**record, "answer": "AB"})


def test_format_direct_target_reads_back():
    record = records()[5]
    assert format_direct_target(record) == "<answer>2.5 to 7.0</answer>"
    assert parse_answer("temporal_grounding", extract_answer(format_direct_target(record))) == [2.5, 7.0]
    with pytest.raises(RecordError, match="answer"):
        format_direct_target({**record, "answer": [1.0]})


@pytest.mark.parametrize("seconds, text", [(7, "7.0"), (2.5, "2.5"), (2.25, "2.25"), (2.256, "2.26"), (-0.001, "0.0")])
def test_format_time(seconds, text):
    assert format_time(seconds) == text


# ------------------------------------------------------------------------------------------ extraction

@pytest.mark.parametrize("text, strict, expected", [
    ("<think>blue</think><answer>B</answer>", True, "B"),
    ("<think>blue</think>\n<answer>  B \n</answer>\n", True, "B"),
    ("<answer>B</answer>", True, "B"),
    ("<think>x</think><answer>A</answer><answer>B</answer>", True, None),          # several answers
    ("<think>x</think><answer>A</answer><answer>B</answer>", False, "B"),
    ("<think>maybe <answer>A</answer></think><answer>B</answer>", True, None),      # tag inside think too
    ("<think>it is <answer>B</answer></think>", True, None),                        # only inside think
    ("<think>it is <answer>B</answer></think>", False, None),
    ("<think>unclosed <answer>B</answer>", True, None),                             # unclosed think hides it
    ("<think>x</think><answer></answer>", True, None),                              # empty
    ("<think>x</think><answer>B", True, None),                                      # truncated
    ("The answer is B", True, None),
    ("The answer is B", False, "The answer is B"),
    ("<think>x</think> B", False, "B"),
    ("", True, None),
    (None, True, None),
    ("<think>x</think><answer>B</answer>" + " " * MAX_COMPLETION_CHARS, True, None),  # enormous
])
def test_extract_answer(text, strict, expected):
    assert extract_answer(text, strict=strict) == expected


# --------------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, expected", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("**B**", "B"), ("[B]", "B"),
    ("B. blue", "B"), ("(B) blue", "B"), ("The answer is B", "B"), ("The correct answer is (B).", "B"),
    ("Answer: B", "B"), ("Option B", "B"), ("blue", "B"), ("Blue.", "B"),
    # hedges and tricks: never credited
    ("A, B, C, D", None), ("A B C D", None), ("ABCD", None), ("B or C", None), ("A/B", None),
    ("B and C are both right", None), ("B. green", None), ("E", None), ("blue or green", None),
    ("", None), ("   ", None), ("none of these", None),
    # look-alike letters are not normalised
    ("\u0412", None),            # Cyrillic capital VE looks like B
    ("\uff22", None),            # fullwidth B
    ("\U0001d401", None),        # mathematical bold B
    ("B\u0430", None),           # B followed by Cyrillic a: not a lone letter
    ("X" * 10_000, None),        # enormous
])
def test_parse_multiple_choice(text, expected):
    assert parse_answer("multiple_choice", text, OPTIONS) == expected


def test_parse_multiple_choice_option_text_with_capital_letter():
    options = ["A red ball", "A blue ball"]
    assert parse_answer("multiple_choice", "A blue ball", options) == "B"
    assert parse_answer("multiple_choice", "B. A blue ball", options) == "B"
    assert parse_answer("multiple_choice", "B. A red ball", options) is None


@pytest.mark.parametrize("text, expected", [
    ("3", 3.0), ("3.0", 3.0), ("3.00", 3.0), ("+3", 3.0), ("-2.5", -2.5), (".5", 0.5), ("1,234", 1234.0),
    ("1,234.5", 1234.5), ("3.5 m", 3.5), ("45%", 45.0), ("1e3", 1000.0), ("three", 3.0), ("Three.", 3.0),
    ("about 3 balls", 3.0), ("3, so 3", 3.0),
    ("3 or 4", None), ("between 2 and 5", None), ("1,2", None), ("", None), ("many", None),
    ("1e999", None),                        # overflows to inf
    ("\uff13", None),                       # fullwidth 3 (float() would accept it)
    ("\u0663", None),                       # Arabic-Indic 3
    ("3" * 9000, None),                     # enormous
])
def test_parse_number(text, expected):
    assert parse_answer("numerical", text) == expected
    assert parse_answer("regression", text) == expected


@pytest.mark.parametrize("text, expected", [
    ("2.5 to 7.0", [2.5, 7.0]), ("2.5-7.0 s", [2.5, 7.0]), ("from 2.5 to 7 seconds", [2.5, 7.0]),
    ("[2.5, 7.0]", [2.5, 7.0]), ("2.5s - 7s", [2.5, 7.0]), ("between 2.5 s and 7.0 s", [2.5, 7.0]),
    ("0:02.5 - 1:05", [2.5, 65.0]), ("7.0 to 2.5", [7.0, 2.5]),  # reversed: reordered by the IoU
    ("2.5 - 7.0", [2.5, 7.0]), ("-1 to 3", None), ("[1, -3]", None),
    ("2.5", None), ("1 to 2 or 3 to 4", None), ("0:75 to 1:00", None), ("soon", None), ("", None),
    ("\uff12 to \uff17", None),             # fullwidth digits
])
def test_parse_span(text, expected):
    assert parse_answer("temporal_grounding", text) == expected


@pytest.mark.parametrize("text, expected", [
    ("[0.1, 0.2, 0.5, 0.6]", [0.1, 0.2, 0.5, 0.6]), ("(0.1,0.2,0.5,0.6)", [0.1, 0.2, 0.5, 0.6]),
    ("The box is [0.1, 0.2, 0.5, 0.6].", [0.1, 0.2, 0.5, 0.6]), ("0.1 0.2 0.5 0.6", [0.1, 0.2, 0.5, 0.6]),
    ("[12, 20, 50, 61]", [12.0, 20.0, 50.0, 61.0]),   # pixels are read as written, then score low
    ("[0.1, 0.2, 0.5, 0.6] or [0.2, 0.2, 0.6, 0.6]", None), ("[0.1, 0.2, 0.5]", None),
    ("0.1 0.2 0.5", None), ("", None),
])
def test_parse_box(text, expected):
    assert parse_answer("spatial_grounding", text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1.0 to 3.0; 1.0: [0.10, 0.20, 0.30, 0.40]; 3: [0.3, 0.2, 0.5, 0.4]",
     {"span": [1.0, 3.0], "boxes": {"1.0": [0.1, 0.2, 0.3, 0.4], "3.0": [0.3, 0.2, 0.5, 0.4]}}),
    ("1.0 to 3.0", {"span": [1.0, 3.0], "boxes": {}}),
    ("1.0s: [0.1, 0.2, 0.3, 0.4]; 2.0s: [0.2, 0.2, 0.4, 0.4]",
     # no span: from the first box time to just after the last (half-open spans exclude their end)
     {"span": [1.0, 2.01], "boxes": {"1.0": [0.1, 0.2, 0.3, 0.4], "2.0": [0.2, 0.2, 0.4, 0.4]}}),
    ("1 to 3; 1: [0.1, 0.2, 0.3, 0.4]; 1.0: [0.5, 0.5, 0.6, 0.6]", None),   # one time, two boxes
    ("1 to 3 or 4 to 5; 1: [0.1, 0.2, 0.3, 0.4]", None),
    ("nothing", None),
])
def test_parse_tube(text, expected):
    assert parse_answer("spatio_temporal_grounding", text) == expected


@pytest.mark.parametrize("text, expected", [("  It  bounces ", "It bounces"), ("", None), ("x" * 9000, None)])
def test_parse_text(text, expected):
    assert parse_answer("free_form", text) == expected
    assert parse_answer("ocr", text) == expected


def test_parse_unknown_type_and_none():
    assert parse_answer("numerical", None) is None
    with pytest.raises(ValueError):
        parse_answer("riddle", "x")


@pytest.mark.parametrize("record", records(), ids=lambda r: r["problem_type"])
def test_target_answer_parses_back(record):
    """format_answer → parse_answer gives the ground truth back (in parsed form)."""
    text = extract_answer(format_target(record))
    parsed = parse_answer(record["problem_type"], text, record.get("options"))
    assert parsed is not None
    assert format_answer(record["problem_type"], record["answer"]) == text


@pytest.mark.parametrize("text", ["<answer>" * 8000, "<think>" * 9000, "<think><answer>" * 4000,
                                  "1," * 4000, "[" * 8000, "1:" * 4000, "[0.1, " * 1300])
def test_adversarial_inputs_are_handled_in_linear_time(text):
    start = time.perf_counter()
    for strict in (True, False):
        content = extract_answer(text, strict=strict) or text[:8000]
        for ptype in PROBLEM_TYPES:
            parse_answer(ptype, content, OPTIONS)
    assert time.perf_counter() - start < 1.0
