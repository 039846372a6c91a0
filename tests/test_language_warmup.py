"""The pretrain stage's language warm-up: look-ups whose answer is the asked word's letter, training
that touches the language model alone and repeats exactly, and a skip when the video phase resumes."""
import random
from pathlib import Path

import pytest
import torch

from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.training.language_warmup import LETTERS, LookupTask, lookup_prompt, single_token_words, warm_up

SHAPES, COLOURS = ["circle", "square"], ["red", "green", "blue", "white", "black"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    workspace = make_workspace(tmp_path_factory.mktemp("ws"))
    records = read_jsonl(workspace / "data/validated/train.jsonl")
    return lambda: build_tiny(TinyConfig.from_params(TINY_SIZES), records, VideoConfig.from_params(VIDEO))


def test_each_look_up_asks_for_the_word_behind_its_answer_letter(tiny):
    _, processor = tiny()
    tokenizer = processor.tokenizer
    words = single_token_words(tokenizer)
    assert len(words) >= 4 and all(len(tokenizer(" " + w)["input_ids"]) == 1 for w in words)
    rng = random.Random(0)
    for _ in range(20):
        prompt, k = lookup_prompt(tokenizer, rng, words, SHAPES)
        asked = prompt.split("Which option says ")[1].split("?")[0]
        assert prompt.endswith("<answer>") and f"{LETTERS[k]}. {asked}" in prompt


def test_warm_up_trains_the_language_model_alone_and_repeats_exactly(tiny):
    runs = []
    for _ in range(2):
        model, processor = tiny()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        task = LookupTask(processor.tokenizer, SHAPES, COLOURS, held_out_items=16)
        result = warm_up(model, task, steps=3, learning_rate=1e-3, batch_size=4, eval_every=2)
        moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        assert moved and all(k.startswith(("model.language_model.", "lm_head.")) for k in moved)
        assert not [k for k in before if k.startswith("model.visual.") and k in moved]
        assert [step for step, _ in result["curve"]] == [0, 2, 3] and result["accuracy"] == result["curve"][-1][1]
        assert result["steps"] == 3 and result["reached"] is None
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_warm_up_is_skipped_when_the_video_phase_resumes(tiny):
    from stages.pretrain import language_warmup
    from videoreasoner.core.tracking import Run
    from videoreasoner.data.world.config import WorldConfig

    model, processor = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = language_warmup(model, processor, WorldConfig.from_params({}), {"max_steps": 5, "learning_rate": 1e-3},
                          Run(None), resume=Path("ckpt/checkpoint-40"), seed=0)
    assert out == {"resumed_from": "checkpoint-40"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert language_warmup(model, processor, WorldConfig.from_params({}), {}, Run(None), resume=None,
                           seed=0) == {"steps": 0}


def test_warm_up_stops_at_the_first_check_that_reaches_its_target(tiny):
    model, processor = tiny()
    task = LookupTask(processor.tokenizer, SHAPES, COLOURS, held_out_items=16)
    start = task.accuracy(model)
    result = warm_up(model, task, steps=50, learning_rate=1e-3, batch_size=4, eval_every=2, target_accuracy=start)
    assert result["steps"] == 0 and result["reached"] is True and result["curve"] == [[0, round(start, 4)]]
    missed = warm_up(model, task, steps=2, learning_rate=1e-3, batch_size=4, eval_every=1, target_accuracy=1.01)
    assert missed["steps"] == 2 and missed["reached"] is False
