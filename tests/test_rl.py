"""The rl stage: variant presets through TRL's own config, outputs of a short run, and crash-resume."""
from __future__ import annotations

import csv
import json

import pytest
from helpers_world import TINY_SIZES, VIDEO, make_workspace

from videoreasoner.training.rewards import DEFAULT_REWARDS
from stages.rl import VARIANTS, RLRun, curves, resolve_params, rl_records, run
from videoreasoner.training.trl_config import parse_trl_config

REWARDS = DEFAULT_REWARDS
BASE = {"bf16": False, "fp16": False, "activation_checkpointing": False}


def rl_params(**overrides) -> dict:
    """A few CPU steps: 2 prompts x 2 generations of 8 tokens."""
    params = {**BASE, "max_steps": 2, "per_device_train_batch_size": 2, "num_generations": 2,
              "max_completion_length": 8, "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no",
              "seed": 0, "use_cpu": True, "disable_tqdm": True, "max_records": 6}
    params.update(overrides)
    return params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A 2-video workspace with a tiny model as models/sft (what the sft stage would leave)."""
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    root = make_workspace(tmp_path_factory.mktemp("rl"), videos={"train": 2})
    records = read_jsonl(root / "data/validated/train.jsonl")
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), records, VideoConfig.from_params(VIDEO)),
                             root / "models/sft")
    return root


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_are_trl_option_sets(variant, tmp_path):
    from trl import GRPOConfig

    own, trl = resolve_params({"variant": variant, **BASE, "use_cpu": True})
    args = parse_trl_config(GRPOConfig, trl, tmp_path, required=("loss_type", "beta", "scale_rewards"))
    for key, value in VARIANTS[variant].items():
        assert getattr(args, key) == value, key
    assert own["skip_zero_variance_groups"] == (variant == "dapo")


def test_explicit_fields_override_the_preset_and_unknowns_fail(tmp_path):
    from trl import GRPOConfig

    _, trl = resolve_params({"variant": "gspo", "beta": 0.02, **BASE, "use_cpu": True})
    args = parse_trl_config(GRPOConfig, trl, tmp_path)
    assert args.beta == 0.02 and args.importance_sampling_level == "sequence"
    with pytest.raises(ValueError, match="unknown 'ppo'"):
        resolve_params({"variant": "ppo"})
    with pytest.raises(ValueError, match="not_a_field"):
        parse_trl_config(GRPOConfig, {**trl, "not_a_field": 1}, tmp_path)


def test_library_defaults_that_change_results_must_be_explicit(workspace, tmp_path):
    params = rl_params()
    del params["bf16"]
    with pytest.raises(ValueError, match="bf16"):
        run(RLRun(rl=params, rewards=REWARDS, video=VIDEO, model_dir=workspace / "models/sft",
                  train_file=workspace / "data/validated/train.jsonl", tracking=False))


def test_curves_have_one_row_per_logged_reward():
    history = [{"step": 1, "reward": 0.5, "rewards/format/mean": 1.0, "kl": 0.0},
               {"step": 1, "train_runtime": 3.0},
               {"step": 2, "reward": 0.7, "rewards/format/mean": 0.9, "rewards/accuracy/mean": None}]
    rows = curves(history, ["format", "accuracy"])
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["reward_format"] == 0.9 and rows[0]["kl"] == 0.0


def test_run_writes_model_metrics_and_reward_curves(workspace, tmp_path, recwarn):
    """GSPO + T-GRPO + zero-variance filter, 2 steps: every output in place, the model reloads, and the
    log carries no FutureWarning from TRL's use of a deprecated transformers property."""
    from videoreasoner.training.model_io import load_model_and_processor

    from videoreasoner.core.atomic import read_jsonl

    types = ["numerical", "temporal_grounding"]
    cfg = RLRun(rl=rl_params(variant="gspo", temporal_contrast={"enabled": True}, skip_zero_variance_groups=True,
                             problem_types=types),
                rewards=REWARDS, video=VIDEO, model_dir=workspace / "models/sft",
                train_file=workspace / "data/validated/train.jsonl", video_root=workspace,
                out_dir=tmp_path / "models/rl", reports_dir=tmp_path / "reports/rl",
                checkpoint_dir=tmp_path / "checkpoints/rl", tracking=False)
    summary = run(cfg)
    assert not [w for w in recwarn if "is_gradient_checkpointing" in str(w.message)]
    assert summary["steps"] == 2 and summary["resumed_from_step"] == 0 and summary["variant"] == "gspo"
    train = read_jsonl(workspace / "data/validated/train.jsonl")
    expected = [r for r in train if r["problem_type"] in types and r["meta"]["kind"] == "reasoning"]
    assert 0 < summary["records"] == len(expected) < len(train) and summary["problem_types"] == types
    metrics = json.loads((tmp_path / "reports/rl/metrics.json").read_text())
    assert metrics["steps_per_second"] > 0 and metrics["video"]["max_frames"] == VIDEO["max_frames"]
    assert metrics["machine"]["torch_cpu_capability"] and metrics["machine"]["cpu"]
    with open(tmp_path / "reports/rl/curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert {"reward", "reward_format", "reward_temporal_contrast", "shuffled_accuracy", "kl"} <= set(rows[0])
    model, processor = load_model_and_processor(tmp_path / "models/rl")
    assert model.config.model_type == "qwen2_5_vl" and processor.tokenizer is not None


def test_rl_records_keep_only_the_named_problem_types():
    def rec(i, ptype, kind="reasoning"):
        return {"id": str(i), "problem_type": ptype, "meta": {"kind": kind}}

    records = [rec(0, "numerical"), rec(1, "multiple_choice"), rec(2, "numerical", "perception"),
               rec(3, "temporal_grounding"), rec(4, "regression")]
    assert [r["id"] for r in rl_records(records, None, None)] == ["0", "1", "3", "4"]
    assert [r["id"] for r in rl_records(records, ["numerical", "temporal_grounding"], None)] == ["0", "3"]
    assert [r["id"] for r in rl_records(records, ["numerical", "temporal_grounding"], 1)] == ["0"]
    with pytest.raises(ValueError, match="rl.problem_types: unknown 'counting'"):
        rl_records(records, ["numerical", "counting"], None)
    with pytest.raises(ValueError, match="rl.problem_types: a non-empty list"):
        rl_records(records, "numerical", None)
    with pytest.raises(ValueError, match="no reasoning records of problem_types"):
        rl_records(records, ["spatial_grounding"], None)


@pytest.mark.parametrize("threads", [0, "2", 1.5, True])
def test_torch_threads_must_be_a_positive_integer(threads):
    with pytest.raises(ValueError, match="rl.torch_threads must be null or an integer >= 1"):
        resolve_params({"torch_threads": threads})
    assert resolve_params({"torch_threads": 2})[0]["torch_threads"] == 2
