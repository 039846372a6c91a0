"""timezero and videochat_r1: cases worked out by hand from TimeZero's grpo_video.py and VideoChat-R1's
grpo_tg.py (line numbers in the protocol's docstring)."""
import pytest

from videoreasoner.answers.protocols.temporal_reward import TIMEZERO, VIDEOCHAT_R1, reward

TRUTH = [2.0, 6.0]
CASES = [
    # (completion, TimeZero reward, VideoChat-R1 reward)
    ("<think>x</think><answer>2 to 6</answer>", 1.0, 1.0),
    ("<answer>3 and 5</answer>", 0.5, 0.5),
    ("<answer>from 1 to 3 and 4 to 6</answer>", 0.5, 0.5),       # several spans: the last (4 to 6)
    ("<answer>9 to 9</answer><answer>2 TO 6</answer>", 1.0, 1.0),  # the last block, case ignored
    ("<answer>2-6</answer>", 0.0, 0.0),                           # no " to "/" and ": unreadable
    ("<answer>2  to 6</answer>", 0.0, 0.0),                       # two spaces
    ("<answer>[2, 6]</answer>", 0.0, 0.0),
    ("2 to 6", 0.0, 0.0),                                         # no tags
    ("<answer>2. to 6</answer>", 1.0, 1.0),                       # "2." reads as 2.0
    ("<answer>6 to 2</answer>", 0.0, 0.0),                        # reversed: overlap 0 / rejected
    ("<answer>4 to 4</answer>", 0.0, 0.0),                        # zero-length inside the truth
    ("<answer>0 to 10</answer>", 0.4, 0.4),
]


@pytest.mark.parametrize("text, timezero, videochat", CASES)
def test_rewards(text, timezero, videochat):
    record = {"id": "tg", "problem_type": "temporal_grounding", "answer": TRUTH}
    assert TIMEZERO.score_item(record, text, {}).score == pytest.approx(timezero)
    assert VIDEOCHAT_R1.score_item(record, text, {}).score == pytest.approx(videochat)


def test_reversed_span_is_kept_by_timezero_and_rejected_by_videochat_r1():
    kept = TIMEZERO.score_item({"answer": TRUTH}, "<answer>6 to 2</answer>", {})
    assert kept.details["span"] == [6.0, 2.0] and kept.error is None
    assert VIDEOCHAT_R1.score_item({"answer": TRUTH}, "<answer>6 to 2</answer>", {}).error == "unreadable"


def test_a_zero_hull_crashes_timezero_and_scores_one_for_videochat_r1():
    crashed = reward("<answer>4 to 4</answer>", [4.0, 4.0], None, reject_reversed=False)
    assert crashed.score == 0.0 and crashed.error == "official_crash"
    assert reward("<answer>4 to 4</answer>", [4.0, 4.0], 1.0, reject_reversed=True).score == 1.0


def test_summary_is_the_mean_reward():
    items = [{"score": 1.0, "error": None}, {"score": 0.0, "error": "unreadable"}, {"score": 0.5, "error": None}]
    assert TIMEZERO.summarize([dict(i, problem_type="temporal_grounding", details={}) for i in items], {}) == \
        {"mean_reward": 0.5, "unreadable": 1}
