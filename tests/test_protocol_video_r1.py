"""video_r1 (src/eval_bench.py) and video_r1_reward (grpo.py accuracy_reward): cases worked out by
hand from Video-R1's code (line numbers in the protocol's docstring)."""
import pytest

from videoreasoner.answers.protocols.video_r1 import PROTOCOL, REWARD_PROTOCOL, mra_float32, word_error_rate


def rec(ptype, answer):
    return {"id": "x", "problem_type": ptype, "answer": answer}


EVAL_BENCH = [
    # (problem type, truth, completion, score)
    ("multiple_choice", "B", "<think>hmm</think><answer>B</answer>", 1.0),
    ("multiple_choice", "B", "<answer> B </answer>", 1.0),
    ("multiple_choice", "B", "<answer>B.</answer>", 0.0),        # exact equality (L166)
    ("multiple_choice", "B", "<answer>(B)</answer>", 0.0),
    ("multiple_choice", "B", "<answer>b</answer>", 0.0),
    ("multiple_choice", "B", "B", 1.0),                          # no tags: the whole text (L161-163)
    ("multiple_choice", "B", "The answer is B", 0.0),
    ("multiple_choice", "B", "<answer>A</answer><answer>B</answer>", 0.0),   # the first block
    ("multiple_choice", "B", "<answer></answer> B", 0.0),        # empty block: the whole text
    ("numerical", "3", "<answer>3</answer>", 1.0),
    ("numerical", "3", "<answer>3.0</answer>", 0.0),             # decimal status differs (L168-171)
    ("numerical", "1000", "<answer>1,000</answer>", 0.0),
    ("numerical", "1,000", "<answer>1000.0</answer>", 1.0),      # both "decimal", commas deleted
    ("numerical", "2.50", "<answer>2.5</answer>", 1.0),
    ("numerical", "3.14159", "<answer>3.14</answer>", 1.0),      # round(·, 2)
    ("numerical", "3", "<answer>3 apples</answer>", 0.0),        # float() fails
    ("numerical", "3", "I count 3 or 4", 0.0),                   # several numbers, no tags
    ("numerical", "3", "3", 1.0),
    ("regression", "10", "<answer>10</answer>", 1.0),
    ("regression", "10", "<answer>12</answer>", 0.6),            # rel 0.2 < 1 - θ for θ <= 0.75
    ("regression", "10", "<answer>15</answer>", 0.0),            # rel 0.5 < 0.5 is false
    ("regression", "10", "<answer>9</answer>", 0.9),             # float32: 0.1 < 1 - 0.9 holds
    ("regression", "10", "<answer>ten</answer>", 0.0),
    ("regression", "10", "<answer>nan</answer>", 0.0),           # NaN < x is false at every threshold
    ("ocr", "STOP here", "<answer>STOP here</answer>", 0.0),     # every other type scores 0 (L184-185)
    ("free_form", "It bounces", "<answer>It bounces</answer>", 0.0),
]


@pytest.mark.parametrize("ptype, truth, text, score", EVAL_BENCH)
def test_eval_bench(ptype, truth, text, score):
    assert PROTOCOL.score_item(rec(ptype, truth), text, {}).score == pytest.approx(score)


REWARD = [
    ("multiple_choice", "B", "<answer>B</answer>", 1.0),
    ("multiple_choice", "B", "B", 0.0),                          # no tags: "" (L68-73), no fallback
    ("numerical", "3", "<answer>3.0</answer>", 0.0),
    ("numerical", "3", "<answer>3</answer>", 1.0),
    ("ocr", "STOP here", "<answer>STOP here</answer>", 1.0),
    ("ocr", "STOP here", "<answer>stop here</answer>", 0.5),     # case counts: one substitution of 2
    ("ocr", "STOP here", "<answer>STOP here now</answer>", 0.5),  # one insertion
    ("ocr", "STOP here", "<answer></answer>", 0.0),
    ("ocr", "STOP here", "<answer>a b c d e</answer>", 0.0),     # WER 2.5, clipped
    ("free_form", "It bounces off the left wall", "<answer>It bounces off the left wall</answer>", 1.0),
    # stemmed: ROUGE-1 and -L 10/11, ROUGE-2 8/9 (5 of the reference's 6 words, 4 of its 5 bigrams)
    ("free_form", "It bounces off the left wall", "<answer>bouncing off the left wall</answer>",
     (10 / 11 + 8 / 9 + 10 / 11) / 3),
    ("regression", "10", "<answer>12</answer>", 0.8),            # 1 - relative error (L146-148)
    ("regression", "10", "<answer>25</answer>", 0.0),
    ("regression", "10", "<answer>ten</answer>", 0.0),
    ("regression", "10", "<answer>nan</answer>", 1.0),           # max(0.0, NaN) is 0.0: full reward
]


@pytest.mark.parametrize("ptype, truth, text, score", REWARD)
def test_accuracy_reward(ptype, truth, text, score):
    assert REWARD_PROTOCOL.score_item(rec(ptype, truth), text, {}).score == pytest.approx(score)


def test_word_error_rate_counts_edits_over_reference_words():
    assert word_error_rate("a b c", "a x c") == pytest.approx(1 / 3)
    assert word_error_rate("a b c", "a c") == pytest.approx(1 / 3)
    assert word_error_rate("", "a b") == 2.0      # max(1, 0) reference words
    assert word_error_rate("a b", "") == 1.0


def test_mra_is_float32():
    assert mra_float32(9.0, 10.0) == pytest.approx(0.9)     # float64 arithmetic would give 0.8
    assert mra_float32(10.0, 0.0) == 0.0                    # |t| + 1e-8 keeps the division finite


def test_summaries():
    items = [{"problem_type": t, "score": s, "details": {}, "error": None}
             for t, s in [("multiple_choice", 1.0), ("ocr", 0.0), ("regression", 0.6), ("regression", 0.2)]]
    out = PROTOCOL.summarize(items, {})
    assert out["mean_acc"] == 0.5 and out["mean_mra"] == pytest.approx(0.4)
    assert out["per_type"] == {"multiple_choice": 1.0, "ocr": 0.0, "regression": pytest.approx(0.4)}
    assert PROTOCOL.summarize(items[:2], {})["mean_mra"] == 0.0       # L264-265: 0.0 without regression
    assert REWARD_PROTOCOL.summarize(items, {})["mean_reward"] == pytest.approx(0.45)
