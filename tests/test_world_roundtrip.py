"""For every problem type of the world, the ground truth written through the answer-format module
parses back to a perfect score under the same verifier the rewards and the metrics use."""
from dataclasses import replace

import pytest

from videoreasoner.answers.format import format_direct_target, format_target
from stages.generate import records_for
from videoreasoner.answers.verifiers import verify
from videoreasoner.data.world.config import WorldConfig

CFG = replace(WorldConfig(seed=11, workers=1), boundary_grid_s=0.25)
RECORDS = [r for i in range(12) for r in records_for(CFG, "train", i)]


def test_the_sample_covers_every_problem_type_of_the_world():
    assert {r["problem_type"] for r in RECORDS} == {
        "multiple_choice", "numerical", "free_form", "regression", "temporal_grounding",
        "spatial_grounding", "spatio_temporal_grounding"}


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["id"])
def test_ground_truth_round_trips_to_a_perfect_score(record):
    target = format_target(record) if "reasoning" in record else format_direct_target(record)
    verdict = verify(record, target)
    assert verdict.score == pytest.approx(1.0), (record["id"], target, verdict)
