"""Spans are half-open, [start, end) (videoreasoner/answers/spans.py), everywhere: the world, tube frame
sets, the verifiers and rewards built on them, the parser, record checks and the constant control."""
import pytest

from stages.generate import records_for, scene_for
from videoreasoner.answers.format import format_answer
from videoreasoner.answers.iou import evaluation_frame_times, tube_frames, tube_tiou, tube_viou
from videoreasoner.answers.parse import parse_tube
from videoreasoner.answers.spans import SPAN_TOLERANCE_S, in_span
from videoreasoner.answers.verifiers import verify
from videoreasoner.data.record_checks import check_times
from videoreasoner.data.world.config import WorldConfig
from videoreasoner.inference.controls import _summary_candidates
from videoreasoner.inference.tts_strategies import similarity
from videoreasoner.training.rewards import build_rewards

FRAMES = evaluation_frame_times(5.0, 1.0)  # 0, 1, 2, 3, 4 s
# 1 fps, boundaries on whole seconds: every tube is a handful of frames, and objects leave before the end
WORLD = WorldConfig(seed=5, fps=1, duration_s=8.0, videos={"test": 12}, workers=1, box_step_s=1.0)


def wrap(answer: str) -> str:
    return f"<think>.</think><answer>{answer}</answer>"


def test_in_span_is_half_open_with_a_tolerance_of_half_the_written_precision():
    assert in_span(1.0, (1.0, 3.0)) and in_span(2.999, (1.0, 3.0)) is False  # within 5 ms of the end: on it
    assert not in_span(3.0, (1.0, 3.0)) and not in_span(0.99, (1.0, 3.0))
    assert in_span(1.0 - SPAN_TOLERANCE_S / 2, (1.0, 3.0))
    # a frame at 1/15 s belongs to a span written "0.07 to 0.17" (30-fps frames 2..4), not to one ending at 0.07
    frames_30 = [k / 30 for k in range(8)]
    assert {k for k, t in enumerate(frames_30) if in_span(t, (0.07, 0.17))} == {2, 3, 4}
    assert not in_span(2 / 30, (0.0, 0.07))


def test_a_frame_at_the_end_time_is_not_in_the_tube():
    assert tube_frames([1.0, 3.0], FRAMES) == {1, 2}
    assert tube_frames([0.0, 5.0], FRAMES) == {0, 1, 2, 3, 4}
    # two tubes that meet share no frame
    assert tube_frames([0.0, 2.0], FRAMES) & tube_frames([2.0, 4.0], FRAMES) == set()
    # a millisecond-rounded end (importers) still excludes its frame: 30 fps, frames 2..4 -> [0.067, 0.167)
    frames_30 = evaluation_frame_times(1.0, 30.0)
    assert tube_frames([0.067, 0.167], frames_30) == {2, 3, 4}
    assert tube_frames([0.067, 0.133], frames_30) == {2, 3}


@pytest.mark.parametrize("span, frame", [
    ([1.0, 1.0], 1),      # a zero-length span at a frame time
    ([1.0, 1.5], 1),      # shorter than a frame, from a frame time
    ([1.2, 1.4], 1),      # between two frame times: the frame on screen
    ([1.5, 2.0], 1),      # ends at the next frame, which is outside
    ([4.2, 4.9], 4),      # after the last frame time, inside the video
])
def test_a_span_shorter_than_a_frame_gets_the_frame_on_screen_at_its_start(span, frame):
    assert tube_frames(span, FRAMES) == {frame}


def test_a_span_outside_the_video_gets_no_frame():
    assert tube_frames([5.0, 5.0], FRAMES) == set() and tube_frames([-0.5, -0.1], FRAMES) == set()


def tubes():
    for i in range(WORLD.videos["test"]):
        scene, _ = scene_for(WORLD, "test", i)
        for r in records_for(WORLD, "test", i):
            if r["problem_type"] == "spatio_temporal_grounding":
                obj = next(o for o in scene.objects if f"the {o.name}:" in r["question"])
                yield r, obj


def test_the_ground_truth_frame_set_is_exactly_the_frames_the_world_draws_the_object_in():
    leaving = 0
    for r, obj in tubes():
        frames = evaluation_frame_times(r["duration"], r["fps"])
        drawn = {k for k, t in enumerate(frames) if obj.visible_at(t)}
        assert tube_frames(r["answer"]["span"], frames) == drawn, r["id"]
        leaving += obj.exit < r["duration"]
    assert leaving >= 3  # objects that leave before the end: a closed end would add their exit frame


def test_a_prediction_of_exactly_the_visible_frames_scores_one():
    checked = 0
    for r, obj in tubes():
        frames = evaluation_frame_times(r["duration"], r["fps"])
        drawn = sorted(k for k, t in enumerate(frames) if obj.visible_at(t))
        # from the first drawn frame to half a frame after the last: only the drawn frames, whichever
        # way the ends are read, with the ground truth's boxes
        pred = {"span": [frames[drawn[0]], frames[drawn[-1]] + 0.5 / r["fps"]], "boxes": r["answer"]["boxes"]}
        assert tube_tiou(pred, r["answer"], frames) == 1.0 and tube_viou(pred, r["answer"], frames) == 1.0
        verdict = verify(r, wrap(format_answer("spatio_temporal_grounding", pred)))
        assert verdict.details == {"tiou": 1.0, "viou": 1.0}, (r["id"], verdict)
        rewards, _ = build_rewards([{"name": "tube_iou", "weight": 1.0, "kwargs": {"tiou_weight": 0.5}}])
        assert rewards[0]([wrap(format_answer("spatio_temporal_grounding", pred))],
                          **{k: [r.get(k)] for k in ("id", "problem_type", "answer", "options", "duration",
                                                     "fps")}) == [1.0]
        checked += 1
    assert checked >= 6


def test_the_world_writes_box_times_inside_the_half_open_span_and_record_checks_agree():
    for r, obj in tubes():
        assert all(obj.enter <= float(t) < obj.exit for t in r["answer"]["boxes"]), r["id"]
        assert check_times(r) is None, r["id"]
        at_end = {**r, "answer": {**r["answer"], "boxes": {**r["answer"]["boxes"], f"{obj.exit:.1f}": [0, 0, 1, 1]}}}
        assert check_times(at_end)[0] == f"answer.boxes[{obj.exit:.1f}]", r["id"]


def test_tts_voting_clusters_tubes_by_the_frames_in_their_half_open_spans():
    box = {"1.0": [0.1, 0.1, 0.3, 0.3]}
    # [1, 3) and [1, 2.5) hold the same frames (1 and 2): the same answer to the vote
    assert similarity("spatio_temporal_grounding", {"span": [1.0, 3.0], "boxes": box},
                      {"span": [1.0, 2.5], "boxes": box}, FRAMES) == 1.0


def test_a_tube_without_a_span_ends_just_after_its_last_box():
    parsed = parse_tube("1.0: [0.1, 0.2, 0.3, 0.4]; 3.0: [0.2, 0.2, 0.4, 0.4]")
    assert parsed["span"] == [1.0, 3.01]
    assert tube_frames(parsed["span"], FRAMES) == {1, 2, 3}


def test_the_constant_tube_control_puts_no_box_at_its_span_end():
    answers = [{"span": [1.0, 3.0], "boxes": {"1.0": [0.1, 0.1, 0.3, 0.3]}},
               {"span": [1.0, 3.0], "boxes": {"2.0": [0.1, 0.1, 0.3, 0.3]}}]
    (median,) = _summary_candidates("spatio_temporal_grounding", answers, [])
    assert median["span"] == [1.0, 3.0] and sorted(median["boxes"]) == ["1.0", "2.0"]
