"""TTS strategies on fake generations (no model): IoU clustering, confidence weights, best-of-n,
sparse-to-dense frame doubling, policies."""
import math
from types import SimpleNamespace

import pytest

from videoreasoner.inference.engines import GREEDY, Generation
from videoreasoner.inference.tts_strategies import (
    AnswerLikelihood, RewardScorer, answer_with_policy, apply_policy, best_of_n, confidence_vote, greedy,
    self_consistency, similarity, sparse_to_dense, vote,
)
from videoreasoner.video.config import VideoConfig

SPAN = {"id": "s", "problem_type": "temporal_grounding", "question": "When?", "answer": [1.0, 5.0], "video": "v.mp4"}
BOX = {"id": "b", "problem_type": "spatial_grounding", "question": "Where?", "answer": {"time": 1.0,
                                                                                      "box": [0.1, 0.1, 0.5, 0.5]},
       "video": "v.mp4"}
MC = {"id": "m", "problem_type": "multiple_choice", "question": "Colour?", "options": ["red", "blue", "green"],
      "answer": "B", "video": "v.mp4"}


def gen(answer: str, logprob: float = -1.0, tokens: int = 4) -> Generation:
    return Generation(f"<think>x</think><answer>{answer}</answer>", (logprob,) * tokens)


class FakeFrames:
    """FrameSource stand-in: timestamps 0, 1, 2, … seconds; remembers its transform name."""

    def __init__(self, transform=None):
        self.video, self.transform = VideoConfig(max_frames=8), transform

    def get(self, record, frames=None):
        return SimpleNamespace(timestamps=tuple(float(i) for i in range(frames or 8)))

    def with_transform(self, transform):
        return FakeFrames(transform)


class FakeEngine:
    """script(record, frames, k, sampled, transform) -> Generation; logs every generate call."""

    def __init__(self, script, loglik=None, frames=None):
        self.script, self.loglik_fn, self.frames = script, loglik, frames or FakeFrames()
        self.model_version, self.calls = "fake", []

    def generate(self, records, *, n=1, decoding=GREEDY, frames=None, desc=""):
        self.calls.append({"ids": [r["id"] for r in records], "n": n, "frames": frames, "sampled": decoding.do_sample})
        return [[self.script(r, frames, k, decoding.do_sample, self.frames.transform) for k in range(n)]
                for r in records]

    def loglik(self, records, completions, *, frames=None):
        return [Generation(c, (self.loglik_fn(r, c),)) for r, c in zip(records, completions)]

    def with_frames(self, source):
        clone = FakeEngine(self.script, self.loglik_fn, source)
        clone.calls = self.calls
        return clone


def test_spans_are_clustered_by_iou_not_as_strings():
    gens = [gen("6.0 to 8.0"), gen("1.0 to 5.0"), gen("1.2 to 5.1"), gen("1.1 to 4.9")]
    index, share = vote(SPAN, gens, iou_threshold=0.5)
    assert index in (1, 2, 3) and share == pytest.approx(0.75)
    # the medoid of the winning cluster, not just its first member
    assert gens[index].text.endswith("<answer>1.0 to 5.0</answer>") or "1.1 to 4.9" in gens[index].text
    assert vote(SPAN, gens, iou_threshold=0.99)[0] == 0  # all singletons: the earliest sample wins


def test_boxes_cluster_by_iou_and_unparseable_samples_do_not_vote():
    gens = [gen("no box"), gen("[0.10, 0.10, 0.50, 0.50]"), gen("[0.11, 0.10, 0.50, 0.51]"),
            gen("[0.60, 0.60, 0.90, 0.90]")]
    index, share = vote(BOX, gens)
    assert index in (1, 2) and share == pytest.approx(0.5)
    assert vote(BOX, [gen("?"), gen("none")]) == (0, 0.0)
    assert vote(MC, [gen("A or B"), gen("C")])[0] == 1  # naming several options is unparseable


def test_similarity_by_type():
    assert similarity("temporal_grounding", [0, 4], [2, 6]) == pytest.approx(1 / 3)
    assert similarity("numerical", 3.0, 3.0000000001) == 1.0
    assert similarity("free_form", "A Red  circle", "a red circle") == 1.0
    tube = {"span": [0.0, 2.0], "boxes": {"0.0": [0, 0, 1, 1]}}
    assert similarity("spatio_temporal_grounding", tube, tube, [0.0, 1.0, 2.0]) == 1.0


def test_confidence_weighting_changes_the_winner():
    script = {0: gen("A", -3.0), 1: gen("A", -3.0), 2: gen("B", -0.05)}
    engine = FakeEngine(lambda r, f, k, s, t: script[k])
    assert self_consistency(engine, [MC], n=3)[0].parsed == "A"
    weighted = confidence_vote(engine, [MC], n=3)[0]
    assert weighted.parsed == "B" and weighted.tokens == 12 and weighted.generations == 3


def test_best_of_n_picks_the_highest_scorer():
    script = {0: gen("A"), 1: gen("C"), 2: gen("B")}
    engine = FakeEngine(lambda r, f, k, s, t: script[k], loglik=lambda r, c: -0.1 if ">C<" in c else -2.0)
    oracle = RewardScorer(lambda record, text: float(f">{record['answer']}<" in text))
    assert best_of_n(engine, [MC], n=3, scorer=oracle)[0].parsed == "B"
    # default scorer: likelihood of the canonical answer <answer>X</answer> under the model
    assert best_of_n(engine, [MC], n=3)[0].parsed == "C"
    scorer = AnswerLikelihood()
    scores = scorer(engine, [MC], [[gen("A"), gen("??")]], None)
    assert scores[0][0] == -2.0 and scores[0][1] == -math.inf


def test_sparse_to_dense_doubles_frames_only_while_answers_disagree():
    agree = dict(MC, id="agree")

    def script(record, frames, k, sampled, transform):
        if record["id"] == "agree" or frames >= 8:
            return gen("B")
        return gen("ABC"[k % 3])  # disagreement below 8 frames

    engine = FakeEngine(script)
    answers = sparse_to_dense(engine, [MC, agree], n=3, start_frames=2, max_frames=16)
    assert [(c["ids"], c["frames"]) for c in engine.calls] == [(["m", "agree"], 2), (["m"], 4), (["m"], 8)]
    assert answers[0].frames == 8 and answers[0].parsed == "B" and answers[0].tokens == 3 * 3 * 4
    assert answers[1].frames == 2 and answers[1].tokens == 12 and answers[1].generations == 3
    capped = sparse_to_dense(FakeEngine(lambda r, f, k, s, t: gen("ABC"[k % 3])), [MC], n=3, start_frames=2,
                             max_frames=4)
    assert capped[0].frames == 4 and capped[0].agreement < 1


def test_policies_dispatch_and_answer_a_bare_question():
    engine = FakeEngine(lambda r, f, k, s, t: gen("B" if s else "A"))
    assert greedy(engine, [MC])[0].parsed == "A" and not engine.calls[-1]["sampled"]
    for strategy in ("self_consistency", "confidence_vote", "best_of_n", "sparse_to_dense"):
        policy = {"strategy": strategy, "n": 2, "frames": 4, "scorer": RewardScorer(lambda r, t: 0.0),
                  "decoding": {"do_sample": True, "temperature": 0.7, "max_new_tokens": 8}}
        assert apply_policy(engine, [MC], policy)[0].parsed == "B", strategy
        assert engine.calls[-1]["frames"] in (2, 4) and engine.calls[-1]["n"] == 2
    text = answer_with_policy(engine, "What colour?", "/x/v.mp4", {"strategy": "greedy"},
                              problem_type="multiple_choice", options=["red", "blue"])
    assert text.endswith("<answer>A</answer>")
    with pytest.raises(ValueError, match="unknown"):
        apply_policy(engine, [MC], {"strategy": "beam"})
