"""Video-R1's two scorers of answer types: `video_r1` (its benchmark evaluation) and `video_r1_reward`
(its RL accuracy reward). Both cover multiple_choice, numerical, ocr, free_form and regression.

Read from tulerfeng/Video-R1 @ 59d65c3. `video_r1` = src/eval_bench.py `reward_fn` and its means;
reproduced quirks, by line:
- L128-133: the answer is the FIRST <answer>…</answer> block (non-greedy, across lines), stripped;
  L161-163: without one (or with an empty one) the WHOLE completion, <think> included, is the answer;
- L166: multiple choice is exact string equality after stripping: "B." / "(B)" / "b" are wrong;
- L168-171: numerical needs the same "has a '.' or ','" status on both sides: truth "3" and answer
  "3.0" score 0, so do "1000" and "1,000";
- L135-140, L172-176: commas are deleted, then Python float() (so "1_000" and " 3 " read); equality
  after round(·, 2); an unreadable number scores 0;
- L142-156, L177-183: regression scores MRA in float32 (torch tensors): the mean over the 10
  thresholds θ = 0.50, 0.55, …, 0.95 of rel < 1 − θ (strict), rel = |p − t| / (|t| + 1e-8);
- L184-185: every other type scores 0.0, so OCR and free-form items are in the benchmark's mean_acc
  as zeros (its benchmarks hold none);
- L186-187: any exception scores 0;
- L246-249, L262-265: mean_acc averages every non-regression item, mean_mra the regression items
  (0.0 when there are none).

`video_r1_reward` = src/r1-v/src/open_r1/grpo.py `accuracy_reward`; reproduced quirks, by line:
- L68-73: the first answer block; without one the answer is "" (no whole-text fallback);
- L109: the batch's first problem type is applied to every completion of the batch; here every item
  is a batch of its own, which is what the quirk reduces to when a batch holds one problem type;
- L120-133: multiple choice and numerical exactly as eval_bench above;
- L83-99, L134-137: OCR scores 1 − WER over whitespace-split words (case and punctuation count),
  edit distance / max(1, reference words), clipped to [0, 1];
- L102-106, L138-140: free-form scores the mean of ROUGE-1, -2 and -L F measures from rouge_score with
  its Porter stemmer (its tokenizer lower-cases and keeps only letters and digits), reference first;
- L141-148: regression scores 1 − min(1, max(0, (|p − t| + 1e-9) / (|t| + 1e-9))); an unreadable
  number fails at L146 and scores 0 through L151-153; the answer "nan" reads as a float whose relative
  error is NaN, max(0.0, NaN) is 0.0 (L147), and it scores the full reward 1.0.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from videoreasoner.answers.protocols.base import Comparison, ItemScore, Protocol, mean, scores_of
from videoreasoner.answers.text import rouge_official

TYPES = ("multiple_choice", "numerical", "ocr", "free_form", "regression")
_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_MRA_THRESHOLDS = np.array([0.5 + 0.05 * i for i in range(10)], dtype=np.float32)


def first_answer(text: str) -> str:
    """The stripped content of the first answer block, "" without one."""
    found = _ANSWER_RE.search(text)
    return found.group(1).strip() if found else ""


def to_number(text: str) -> float | None:
    """Commas deleted, then float(); None when that fails."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def numerical_match(truth: str, answer: str) -> float:
    """1.0 when both spell a decimal point/comma or neither does and they agree to 2 decimals."""
    if (("." in truth) or ("," in truth)) != (("." in answer) or ("," in answer)):
        return 0.0
    t, a = to_number(truth), to_number(answer)
    return 0.0 if t is None or a is None else float(round(t, 2) == round(a, 2))


def mra_float32(pred: float, truth: float) -> float:
    """Mean relative accuracy as the eval script computes it, in float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        p, t = np.float32(pred), np.float32(truth)
        rel = np.abs(p - t) / (np.abs(t) + np.float32(1e-8))
        return float(np.mean(rel < (np.float32(1) - _MRA_THRESHOLDS)))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over whitespace tokens / max(1, number of reference words)."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], prev if r == h else 1 + min(row[j], row[j - 1], prev)
    return row[len(hyp)] / max(1, len(ref))


def _eval_bench_item(record: dict, text: str, settings: dict) -> ItemScore:
    answer = first_answer(text) or text
    truth, ptype = str(record["answer"]), record["problem_type"]
    if ptype == "multiple_choice":
        return ItemScore(float(answer.strip() == truth.strip()))
    if ptype == "numerical":
        return ItemScore(numerical_match(truth, answer))
    if ptype == "regression":
        t, a = to_number(truth), to_number(answer)
        return ItemScore(0.0 if t is None or a is None else mra_float32(a, t))
    return ItemScore(0.0, {}, "type_scored_zero")  # L184-185


def _eval_bench_summary(items: list[dict], settings: dict) -> dict[str, Any]:
    acc = [i["score"] for i in items if i["problem_type"] != "regression"]
    mra = scores_of(items, ("regression",))
    return {"mean_acc": mean(acc), "mean_mra": mean(mra) if mra else 0.0,
            "per_type": {t: mean(scores_of(items, (t,))) for t in TYPES if scores_of(items, (t,))}}


def _reward_item(record: dict, text: str, settings: dict) -> ItemScore:
    answer, truth, ptype = first_answer(text), first_answer(str(record["answer"])) or str(record["answer"]), \
        record["problem_type"]
    if ptype == "multiple_choice":
        return ItemScore(float(answer.strip() == truth.strip()))
    if ptype == "numerical":
        return ItemScore(numerical_match(truth, answer))
    if ptype == "ocr":
        return ItemScore(max(0.0, min(1.0, 1 - word_error_rate(truth, answer))))
    if ptype == "free_form":
        return ItemScore(max(0.0, min(1.0, rouge_official(answer, truth))))
    t, a = to_number(truth), to_number(answer)
    if t is None or a is None:
        return ItemScore(0.0, {}, "exception")  # L146 fails on None, L151-153 score it 0
    return ItemScore(1 - min(1.0, max(0.0, (abs(a - t) + 1e-9) / (abs(t) + 1e-9))))


def _reward_summary(items: list[dict], settings: dict) -> dict[str, Any]:
    return {"mean_reward": mean(scores_of(items)),
            "per_type": {t: mean(scores_of(items, (t,))) for t in TYPES if scores_of(items, (t,))}}


def _per_type(scale: float = 1.0) -> tuple[Comparison, ...]:
    return tuple(Comparison(t, f"per_type.{t}", f"per_type.{t}.score", scale) for t in TYPES)


PROTOCOL = Protocol(
    name="video_r1",
    official="tulerfeng/Video-R1 src/eval_bench.py @ 59d65c3",
    problem_types=TYPES,
    settings={},
    score_item=_eval_bench_item,
    summarize=_eval_bench_summary,
    comparisons=_per_type(),
    summary="Video-R1's benchmark script: exact-match answers, float32 MRA; OCR and free-form score 0",
)

REWARD_PROTOCOL = Protocol(
    name="video_r1_reward",
    official="tulerfeng/Video-R1 src/r1-v/src/open_r1/grpo.py @ 59d65c3",
    problem_types=TYPES,
    settings={},
    score_item=_reward_item,
    summarize=_reward_summary,
    comparisons=_per_type(),
    summary="Video-R1's RL accuracy reward: exact match, 1 − WER, stemmed ROUGE, 1 − relative error",
)
