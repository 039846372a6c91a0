"""Reward-hacking probes: no adversarial completion scores above the honest answer (issue 7, item 3).

Ground truth: every record of a few synthetic-world test videos (all problem types the world makes)
plus hand-written OCR items (the world makes none). Each case in CASES turns a record into an
adversarial completion; it must never beat the honest target `format_target(record)` under any reward
of the default spec (params.yaml `rewards` through build_rewards; per reward and the weighted sum, a
None meaning "does not apply"), nor under the evaluation path (verify, score_predictions + aggregate).
Cases marked `zero` must not be credited at all: every applicable reward and the verifier give 0.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from videoreasoner.answers.canonical import format_box, format_time
from videoreasoner.answers.format import format_answer, format_target
from videoreasoner.answers.parse import parse_number, parse_span
from stages.generate import records_for
from videoreasoner.training.rewards import build_rewards
from videoreasoner.core.schema import OPTION_LETTERS
from videoreasoner.answers.score import score_predictions
from videoreasoner.answers.spans import in_span
from videoreasoner.answers.verifiers import DETAIL_KEYS, evaluation_frame_times, verify
from videoreasoner.data.world.config import WorldConfig

ROOT = Path(__file__).resolve().parents[1]
N_VIDEOS = 6
TOL = 1e-12
OCR_TEXTS = ("STOP", "EXIT 42", "open 24 hours", "Lab B")


def _ocr_records(like: dict) -> list[dict]:
    return [{"id": f"ocr-{i}", "video": like["video"], "duration": like["duration"], "fps": like["fps"],
             "problem_type": "ocr", "question": "What does the sign say?", "answer": text,
             "reasoning": f"The sign in the video reads {text}.", "split": "test", "source": "hand-written"}
            for i, text in enumerate(OCR_TEXTS)]


WORLD = [r for i in range(N_VIDEOS) for r in records_for(WorldConfig(), "test", i)]
RECORDS = WORLD + _ocr_records(WORLD[0])
SPEC = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["rewards"]
FUNCS, WEIGHTS = build_rewards(SPEC)


# ---------------------------------------------------------------------------------------------------
# Building blocks of the adversarial completions
# ---------------------------------------------------------------------------------------------------

def honest(r: dict) -> str:
    return format_answer(r["problem_type"], r["answer"])


def wrap(r: dict, inner: str) -> str:
    return f"<think>{r['reasoning']}</think><answer>{inner}</answer>"


def wrong(r: dict) -> str:
    """A well-formed but wrong answer of the record's type."""
    t = r["problem_type"]
    if t == "multiple_choice":
        return next(x for x in OPTION_LETTERS[:len(r["options"])] if x != r["answer"])
    if t in ("numerical", "regression"):
        return f"{parse_number(str(r['answer'])) * 2 + 3:g}"
    if t in ("free_form", "ocr"):
        return "a grey dot stays still"
    if t == "temporal_grounding":
        return "0.0 to 0.25"
    if t == "spatial_grounding":
        return "[0.00, 0.00, 0.05, 0.05]"
    return "0.0 to 0.25; 0.0: [0.00, 0.00, 0.05, 0.05]"


def whole_tube(r: dict, span: list[float]) -> str:
    """A tube with a whole-frame box at every evaluation frame time inside the half-open `span` (seconds)."""
    times = [t for t in evaluation_frame_times(r["duration"], r["fps"]) if in_span(t, span)]
    pairs = [f"{format_time(t)}: {format_box([0, 0, 1, 1])}" for t in times]
    return "; ".join([f"{format_time(span[0])} to {format_time(span[1])}", *pairs])


LOOKALIKE_DIGITS = {"arabic_indic": 0x0660, "extended_arabic_indic": 0x06F0, "devanagari": 0x0966,
                    "fullwidth": 0xFF10, "math_bold": 0x1D7CE}


def digits(text: str, base: int, count: int = 0) -> str:
    """`text` with its ASCII digits (all, or the first `count`) replaced by look-alikes from `base`."""
    return re.sub(r"[0-9]", lambda m: chr(base + int(m.group(0))), text, count=count)


CYRILLIC = str.maketrans("aceopxyABCEHKMOPTX", "асеорхуАВСЕНКМОРТХ")
SALAD = ("red", "orange", "cyan", "green", "moves", "left", "right", "top", "bottom", "appears", "vanishes",
         "stop", "exit", "open")
GREEK = {"A": "Α", "B": "Β", "E": "Ε", "H": "Η", "I": "Ι", "K": "Κ", "M": "Μ", "N": "Ν", "O": "Ο"}


def mc(build: Callable[[dict], str | None]) -> Callable[[dict], str | None]:
    return lambda r: build(r) if r["problem_type"] == "multiple_choice" else None


def of(types: tuple[str, ...], build: Callable[[dict], str | None]) -> Callable[[dict], str | None]:
    return lambda r: build(r) if r["problem_type"] in types else None


NUMBERS = ("numerical", "regression")
TEXTS = ("free_form", "ocr")
GROUNDING = ("temporal_grounding", "spatial_grounding", "spatio_temporal_grounding")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[dict], str | None]  # None: the case does not apply to this record
    zero: bool = False                   # must not be credited at all

    def completions(self) -> tuple[list[dict], list[str]]:
        pairs = [(r, c) for r in RECORDS if (c := self.build(r)) is not None]
        assert pairs, f"case {self.name} applies to no record"
        return [r for r, _ in pairs], [c for _, c in pairs]


def _other_letters(r: dict) -> str:
    return " ".join(x for x in OPTION_LETTERS[:len(r["options"])] if x != r["answer"])


CASES = [
    # several options at once
    Case("all_letters_spaced", mc(lambda r: wrap(r, " ".join(OPTION_LETTERS[:len(r["options"])]))), zero=True),
    Case("all_letters_slashed", mc(lambda r: wrap(r, "/".join(OPTION_LETTERS[:len(r["options"])]))), zero=True),
    Case("all_letters_glued", mc(lambda r: wrap(r, "".join(OPTION_LETTERS[:len(r["options"])]))), zero=True),
    Case("all_letters_listed", mc(lambda r: wrap(r, "A, B, C or D")), zero=True),
    Case("letters_parenthesised", mc(lambda r: wrap(r, f"({r['answer']})({wrong(r)})")), zero=True),
    Case("right_or_wrong_letter", mc(lambda r: wrap(r, f"{r['answer']} or {wrong(r)}")), zero=True),
    Case("right_letter_then_others", mc(lambda r: wrap(r, f"{r['answer']} {_other_letters(r)}")), zero=True),
    Case("all_option_texts", mc(lambda r: wrap(r, " / ".join(r["options"]))), zero=True),
    Case("letter_beyond_options", mc(lambda r: wrap(r, "Z")), zero=True),
    # several answer blocks, answers hidden in the reasoning
    Case("two_tags_right_first", lambda r: wrap(r, honest(r)) + f"<answer>{wrong(r)}</answer>", zero=True),
    Case("two_tags_wrong_first", lambda r: wrap(r, wrong(r)) + f"<answer>{honest(r)}</answer>", zero=True),
    Case("two_tags_both_right", lambda r: wrap(r, honest(r)) + f"<answer>{honest(r)}</answer>", zero=True),
    Case("two_tags_in_one_answer", lambda r: wrap(r, f"<answer>{honest(r)}</answer>"), zero=True),
    Case("answer_only_inside_think",
         lambda r: f"<think>{r['reasoning']} <answer>{honest(r)}</answer></think>", zero=True),
    Case("answer_inside_unclosed_think", lambda r: f"<think>{r['reasoning']} <answer>{honest(r)}</answer>",
         zero=True),
    Case("right_in_think_wrong_outside",
         lambda r: f"<think><answer>{honest(r)}</answer></think><answer>{wrong(r)}</answer>", zero=True),
    Case("nested_think", lambda r: f"<think><think>x</think><answer>{honest(r)}</answer></think>"),
    Case("uppercase_tags", lambda r: f"<THINK>{r['reasoning']}</THINK><ANSWER>{honest(r)}</ANSWER>", zero=True),
    Case("answer_without_think", lambda r: f"<answer>{honest(r)}</answer>"),
    Case("bare_answer_no_tags", lambda r: honest(r), zero=True),
    # blanket answers: the whole video, the whole frame, both
    Case("whole_video_span", of(("temporal_grounding",), lambda r: wrap(r, f"0.0 to {format_time(r['duration'])}"))),
    Case("whole_video_span_reversed",
         of(("temporal_grounding",), lambda r: wrap(r, f"{format_time(r['duration'])} to 0.0"))),
    Case("huge_span_beyond_video", of(("temporal_grounding",), lambda r: wrap(r, "0.0 to 100000.0"))),
    Case("negative_to_huge_span", of(("temporal_grounding",), lambda r: wrap(r, "-100000 to 100000")), zero=True),
    Case("two_spans_covering_video", of(("temporal_grounding",), lambda r: wrap(r, "0.0 to 4.0, 4.0 to 8.0")),
         zero=True),
    Case("whole_frame_box", of(("spatial_grounding",), lambda r: wrap(r, "[0.00, 0.00, 1.00, 1.00]"))),
    Case("box_beyond_frame", of(("spatial_grounding",), lambda r: wrap(r, "[-10.00, -10.00, 10.00, 10.00]"))),
    Case("box_in_pixels", of(("spatial_grounding",), lambda r: wrap(r, "[0, 0, 112, 112]"))),
    Case("true_box_and_whole_frame",
         of(("spatial_grounding",), lambda r: wrap(r, f"{honest(r)} or [0.00, 0.00, 1.00, 1.00]")), zero=True),
    Case("whole_frame_tube_whole_video",
         of(("spatio_temporal_grounding",), lambda r: wrap(r, whole_tube(r, [0.0, r["duration"]])))),
    Case("whole_frame_tube_true_span",
         of(("spatio_temporal_grounding",), lambda r: wrap(r, whole_tube(r, r["answer"]["span"])))),
    Case("whole_video_span_no_boxes",
         of(("spatio_temporal_grounding",), lambda r: wrap(r, f"0.0 to {format_time(r['duration'])}"))),
    Case("tube_two_boxes_one_time",
         of(("spatio_temporal_grounding",), lambda r: wrap(r, honest(r) + f"; {format_time(r['answer']['span'][0])}: "
                                                           "[0.00, 0.00, 1.00, 1.00]")), zero=True),
    Case("tube_too_many_boxes", of(("spatio_temporal_grounding",), lambda r: wrap(r, "0.0 to 8.0; " + "; ".join(
        f"{k / 100:.2f}: [0.00, 0.00, 1.00, 1.00]" for k in range(600)))), zero=True),
    # hedged numbers and texts
    Case("two_numbers", of(NUMBERS, lambda r: wrap(r, f"{honest(r)} or {wrong(r)}")), zero=True),
    Case("number_range", of(NUMBERS, lambda r: wrap(r, "between 0 and 100")), zero=True),
    Case("non_finite_number", of(NUMBERS, lambda r: wrap(r, "1e999")), zero=True),
    Case("huge_number", of(NUMBERS, lambda r: wrap(r, "1e300"))),
    Case("text_repeated", of(TEXTS, lambda r: wrap(r, " ".join([honest(r)] * 20)))),
    Case("text_plus_word_salad", of(TEXTS, lambda r: wrap(r, honest(r) + " " + " ".join(SALAD * 5)))),
    # size: enormous, repeated, empty
    Case("think_200k_chars", lambda r: f"<think>{'x ' * 100_000}</think><answer>{honest(r)}</answer>", zero=True),
    Case("answer_tags_repeated_200k",
         lambda r: f"<answer>{honest(r)}</answer>" * (200_000 // (len(honest(r)) + 17) + 1), zero=True),
    Case("answer_tags_repeated_3x", lambda r: wrap(r, honest(r)) + f"<answer>{honest(r)}</answer>" * 2, zero=True),
    Case("answer_body_60k_chars", lambda r: wrap(r, " ".join([honest(r)] * (60_000 // (len(honest(r)) + 1)))),
         zero=True),
    Case("long_think_under_limit", lambda r: f"<think>{'x ' * 30_000}{r['reasoning']}</think>"
                                             f"<answer>{honest(r)}</answer>"),
    Case("empty_output", lambda r: "", zero=True),
    Case("whitespace_output", lambda r: " \n\t ", zero=True),
    Case("empty_tags", lambda r: "<think></think><answer></answer>", zero=True),
    Case("empty_answer", lambda r: f"<think>{r['reasoning']}</think><answer> </answer>", zero=True),
    # look-alike letters and digits
    Case("cyrillic_letter", mc(lambda r: wrap(r, r["answer"].translate(CYRILLIC))
                               if r["answer"] in "ABCEHKMOPTX" else None), zero=True),
    Case("greek_letter", mc(lambda r: wrap(r, GREEK[r["answer"]]) if r["answer"] in GREEK else None), zero=True),
    Case("fullwidth_letter", mc(lambda r: wrap(r, chr(0xFF21 + OPTION_LETTERS.index(r["answer"])))), zero=True),
    Case("math_bold_letter", mc(lambda r: wrap(r, chr(0x1D400 + OPTION_LETTERS.index(r["answer"])))), zero=True),
    Case("circled_letter", mc(lambda r: wrap(r, chr(0x24B6 + OPTION_LETTERS.index(r["answer"])))), zero=True),
    Case("cyrillic_text", of(TEXTS, lambda r: wrap(r, honest(r).translate(CYRILLIC)))),
    *[Case(f"{name}_digits", of(NUMBERS + GROUNDING, lambda r, b=base: wrap(r, digits(honest(r), b))), zero=True)
      for name, base in LOOKALIKE_DIGITS.items()],
    Case("superscript_digits", of(NUMBERS, lambda r: wrap(r, honest(r).translate(str.maketrans(
        "0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")))), zero=True),
    Case("cyrillic_tags", lambda r: f"<think>{r['reasoning']}</think><аnswer>{honest(r)}</аnswer>", zero=True),
]

# Mixed-script digits and combining marks: once read as ASCII ("٣.5" -> 0.5, "A\u0301" -> "A").
CASES += [
    Case("first_digit_arabic_indic",
         of(NUMBERS + GROUNDING, lambda r: wrap(r, digits(honest(r), 0x0660, count=1))), zero=True),
    Case("letter_with_combining_accent", mc(lambda r: wrap(r, r["answer"] + "\u0301")), zero=True),
]
# Non-finite predictions (issue 14, item 8): the parsers refuse them, so they score 0, never crash, never 1.
OVERFLOW = "9" * 400  # float() of it is inf
CASES += [
    *[Case(f"{name}_answer", of(NUMBERS + GROUNDING, lambda r, t=text: wrap(r, t)), zero=True)
      for name, text in (("nan", "nan"), ("inf", "inf"), ("minus_infinity", "-Infinity"), ("overflow", OVERFLOW))],
    Case("nan_span_end", of(("temporal_grounding",), lambda r: wrap(r, "0.0 to NaN")), zero=True),
    Case("overflowing_span_end", of(("temporal_grounding",), lambda r: wrap(r, f"0.0 to {OVERFLOW}")), zero=True),
    Case("nan_box", of(("spatial_grounding",), lambda r: wrap(r, "[nan, 0.00, 1.00, 1.00]")), zero=True),
    Case("overflowing_box", of(("spatial_grounding",), lambda r: wrap(r, f"[0.00, 0.00, {OVERFLOW}, 1.00]")),
         zero=True),
    Case("tube_nan_box_time", of(("spatio_temporal_grounding",),
                                 lambda r: wrap(r, "0.0 to 8.0; nan: [0.00, 0.00, 1.00, 1.00]")), zero=True),
    Case("tube_overflowing_box_time", of(("spatio_temporal_grounding",), lambda r: wrap(
        r, f"0.0 to 8.0; {OVERFLOW}: [0.00, 0.00, 1.00, 1.00]")), zero=True),
    Case("text_nan", of(TEXTS, lambda r: wrap(r, "nan"))),
]
ALL_CASES = [pytest.param(c, id=c.name) for c in CASES]
ZERO_CASES = [pytest.param(c, id=c.name) for c in CASES if c.zero]


# ---------------------------------------------------------------------------------------------------
# Scoring helpers
# ---------------------------------------------------------------------------------------------------

def columns(rows: list[dict]) -> dict[str, list]:
    """Dataset columns as TRL passes them: one list per field, one entry per completion."""
    keys = ("id", "problem_type", "answer", "options", "duration", "fps", "question")
    return {k: [r.get(k) for r in rows] for k in keys}


def rewards(rows: list[dict], comps: list, form: str = "text") -> dict[str, list[float | None]]:
    """{reward name: values} under the default spec, plus "weighted" (TRL's sum over applicable rewards)."""
    if form == "conversational":
        comps = [[{"role": "assistant", "content": c}] for c in comps]
    out = {f.__name__: f(comps, **columns(rows)) for f in FUNCS}
    out["weighted"] = [sum(w * v for w, v in zip(WEIGHTS, vals) if v is not None)
                       for vals in zip(*(out[f.__name__] for f in FUNCS))]
    return out


def metric_values(tree: object, path: str = "") -> dict[str, float | None]:
    """Every {"value": ...} leaf of an aggregate() result, by dotted path."""
    if isinstance(tree, dict):
        if "value" in tree:
            return {path: tree["value"]}
        return {k: v for key, sub in tree.items() for k, v in metric_values(sub, f"{path}.{key}").items()}
    return {}


def evaluate(rows: list[dict], comps: list[str], strict: bool) -> dict[str, float | None]:
    predictions = [{"id": r["id"], "prediction": c} for r, c in zip(rows, comps)]
    metrics, _ = score_predictions(rows, predictions, strict=strict, n_boot=20)
    return metric_values({k: metrics[k] for k in ("overall", "per_type", "summary")})


def honest_completions(rows: list[dict]) -> list[str]:
    return [format_target(r) for r in rows]


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------

def test_records_cover_every_problem_type_and_honest_targets_get_full_marks():
    from videoreasoner.core.schema import PROBLEM_TYPES

    assert {r["problem_type"] for r in RECORDS} == set(PROBLEM_TYPES)
    assert [f.__name__ for f in FUNCS] == ["format", "accuracy", "temporal_iou", "box_iou", "tube_iou"]
    got = rewards(RECORDS, honest_completions(RECORDS))
    for name, values in got.items():
        assert all(v in (None, 1.0) for v in values if name != "weighted"), name
    assert got["weighted"] == [WEIGHTS[0] + 1.0] * len(RECORDS)  # format + the one task reward of its type
    assert all(verify(r, format_target(r)).score == 1.0 for r in RECORDS)


@pytest.mark.parametrize("form", ["text", "conversational"])
@pytest.mark.parametrize("case", ALL_CASES)
def test_no_case_beats_the_honest_answer_under_any_reward(case, form):
    rows, comps = case.completions()
    adversarial, truthful = rewards(rows, comps, form), rewards(rows, honest_completions(rows), form)
    for name in truthful:
        for r, adv, ref in zip(rows, adversarial[name], truthful[name]):
            assert (adv is None) == (ref is None), (case.name, name, r["id"])
            assert adv is None or adv <= ref + TOL, (case.name, name, r["id"], adv, ref)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize("case", ALL_CASES)
def test_no_case_beats_the_honest_answer_under_evaluation(case, strict):
    rows, comps = case.completions()
    for r, c in zip(rows, comps):
        adv, ref = verify(r, c, strict=strict), verify(r, format_target(r), strict=strict)
        assert adv.score <= ref.score + TOL, (case.name, r["id"], adv, ref)
        assert all(adv.details[k] <= ref.details[k] + TOL for k in DETAIL_KEYS.get(r["problem_type"], ())), \
            (case.name, r["id"], adv)
    adversarial, truthful = evaluate(rows, comps, strict), evaluate(rows, honest_completions(rows), strict)
    assert adversarial.keys() == truthful.keys()
    for key, ref in truthful.items():
        adv = adversarial[key]
        assert (adv is None) == (ref is None), (case.name, key)
        assert adv is None or adv <= ref + TOL, (case.name, key, adv, ref)


@pytest.mark.parametrize("case", ZERO_CASES)
def test_hedges_tricks_and_look_alikes_are_never_credited(case):
    rows, comps = case.completions()
    for name, values in rewards(rows, comps).items():
        for r, v in zip(rows, values):
            assert v in (None, 0.0), (case.name, name, r["id"], v)
    for r, c in zip(rows, comps):
        verdict = verify(r, c)
        assert verdict.score == 0.0 and verdict.error is not None, (case.name, r["id"], verdict)
        assert all(v == 0.0 for v in verdict.details.values()), (case.name, r["id"], verdict)
    assert evaluate(rows, comps, strict=True)[".overall.score"] == 0.0


def test_blanket_answers_score_strictly_below_the_truth_unless_the_truth_is_the_blanket():
    """Covering the whole video / frame is never a free win: it loses wherever the truth is smaller."""
    blankets = {c.name: c for c in CASES if c.name in (
        "whole_video_span", "whole_frame_box", "whole_frame_tube_whole_video", "whole_frame_tube_true_span")}
    checked = 0
    for case in blankets.values():
        for r, c in zip(*case.completions()):
            truth = r["answer"]
            whole = (truth == [0.0, r["duration"]] if r["problem_type"] == "temporal_grounding"
                     else truth.get("box") == [0.0, 0.0, 1.0, 1.0])
            if not whole:
                assert verify(r, c).score < 1.0, (case.name, r["id"])
                checked += 1
    assert checked >= 3 * N_VIDEOS
    # a tube that is only a whole-video span (no boxes) earns nothing from the tube reward or metric
    tube = next(c for c in CASES if c.name == "whole_video_span_no_boxes")
    rows, comps = tube.completions()
    assert set(rewards(rows, comps)["tube_iou"]) == {0.0}
    assert {verify(r, c).score for r, c in zip(rows, comps)} == {0.0}


def test_mixed_script_numbers_are_not_misread():
    assert parse_number("٣.5") is None
    assert parse_span("٢.0 to 8.0") is None


def test_failing_free_form_verdicts_carry_the_same_detail_keys_as_scored_ones():
    r = next(r for r in RECORDS if r["problem_type"] == "free_form")
    assert set(verify(r, "").details) == set(verify(r, format_target(r)).details)
