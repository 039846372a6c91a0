"""Resume is weight-exact: a run resumed from checkpoint-k ends with the same weights and the same loss as
the run that was never interrupted, and any checkpoint that does not match the model is an error.

The stock transformers 5.23 resume of a Qwen2.5-VL checkpoint loaded nothing (legacy key names) and only
warned; the step counter still went on, so tests that compare step counts passed while the weights were
the base model's. These tests compare weights.
"""
import logging
import shutil

import pytest
import torch

from videoreasoner.core.atomic import read_jsonl
from videoreasoner.training.checkpoint_weights import CheckpointMismatch, assert_weights_match, load_full_weights, saved_names
from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
from videoreasoner.data.selection import select_records
from videoreasoner.training.sft_trainer import train
from videoreasoner.training.tiny_model import TinyConfig, build_tiny
from videoreasoner.video.config import VideoConfig
from tests.helpers_world import TINY_SIZES, VIDEO, distinct_characters_reward, make_workspace, trl_params

STEPS, SAVE = 4, 2


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = make_workspace(tmp_path_factory.mktemp("ws"), videos={"train": 2})
    records = read_jsonl(root / "data/validated/train.jsonl")
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), records, VideoConfig.from_params(VIDEO)),
                             root / "models/base")
    return root


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6)]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


def _sft(root, checkpoints, **overrides):
    model, processor = load_model_and_processor(root / "models/base")
    records = select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")
    params = {**trl_params(STEPS, save_strategy="steps", save_steps=SAVE, lr_scheduler_type="linear"), **overrides}
    return train(model, processor, records, root, params, VideoConfig.from_params(VIDEO), checkpoints, "fp")


@pytest.mark.parametrize("lora", [None, {"enabled": True, "r": 4, "lora_alpha": 8,
                                          "target_modules": ["q_proj", "v_proj"]}], ids=["full", "lora"])
def test_sft_resumed_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(workspace, tmp_path, lora, caplog):
    extra = {"lora": lora} if lora else {}
    whole, whole_summary = _sft(workspace, tmp_path / "ckpt", **extra)
    assert whole_summary["resumed_from_step"] == 0 and whole_summary["steps"] == STEPS
    # The run "killed" after checkpoint-SAVE: its later checkpoint never landed.
    shutil.rmtree(tmp_path / "ckpt" / f"checkpoint-{STEPS}")
    with caplog.at_level(logging.WARNING, logger="transformers"):
        resumed, summary = _sft(workspace, tmp_path / "ckpt", **extra)
    assert summary["resumed_from_step"] == SAVE and summary["steps"] == STEPS
    assert summary["final_loss"] == pytest.approx(whole_summary["final_loss"], rel=1e-5)
    assert_same_weights(weights(resumed), weights(whole))
    assert not [r for r in caplog.records if "keys" in r.getMessage()], "a key warning on resume is a failure"


def test_resumed_weights_are_checked_against_the_checkpoint(workspace, tmp_path):
    """The run-time check: a model that does not hold the checkpoint's weights is refused by name."""
    model, _ = load_model_and_processor(workspace / "models/base")
    model.save_pretrained(tmp_path / "ckpt")
    assert assert_weights_match(model, tmp_path / "ckpt") == len(saved_names(model))
    with torch.no_grad():
        model.lm_head.weight.add_(1e-3)
    with pytest.raises(CheckpointMismatch, match="lm_head.weight"):
        assert_weights_match(model, tmp_path / "ckpt")


def test_loading_a_checkpoint_with_missing_unexpected_or_reshaped_keys_fails(workspace, tmp_path):
    from safetensors.torch import load_file, save_file

    model, _ = load_model_and_processor(workspace / "models/base")
    model.save_pretrained(tmp_path / "good")
    tensors = load_file(tmp_path / "good/model.safetensors")
    other, _ = load_model_and_processor(workspace / "models/base")
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    assert load_full_weights(other, tmp_path / "good") == len(tensors)
    assert_same_weights(weights(other), weights(model))

    cases = {"missing keys": {k: v for k, v in tensors.items() if not k.startswith("visual.")},
             "unexpected keys": {**tensors, "visual.extra.weight": torch.zeros(2)},
             "another shape": {**tensors, "lm_head.weight": tensors["lm_head.weight"][:-1]}}
    for problem, broken in cases.items():
        (tmp_path / problem).mkdir()
        save_file(broken, tmp_path / problem / "model.safetensors", metadata={"format": "pt"})
        before = weights(other)
        with pytest.raises(CheckpointMismatch, match=problem):
            load_full_weights(other, tmp_path / problem)
        assert_same_weights(weights(other), before)  # nothing half-loaded


def test_every_model_load_refuses_missing_or_unexpected_keys(workspace, tmp_path):
    """videoreasoner.training.model_io is the one loader (stages, inference engines, the pyfunc): a checkpoint that lacks a
    tensor or carries a foreign one fails there instead of warning and keeping random weights."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(workspace / "models/base", tmp_path / "partial")
    tensors = load_file(tmp_path / "partial/model.safetensors")
    save_file({k: v for k, v in tensors.items() if k != "lm_head.weight"}, tmp_path / "partial/model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatch, match="missing keys: lm_head.weight"):
        load_model_and_processor(tmp_path / "partial")
    shutil.copytree(workspace / "models/base", tmp_path / "extra")
    save_file({**tensors, "visual.extra.weight": torch.zeros(2)}, tmp_path / "extra/model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatch, match=r"unexpected keys: (model\.)?visual.extra.weight"):
        load_model_and_processor(tmp_path / "extra")


RL = {"bf16": False, "fp16": False, "activation_checkpointing": False, "max_steps": STEPS,
      "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 8, "learning_rate": 1e-3,
      "lr_scheduler_type": "linear", "logging_steps": 1, "save_strategy": "steps", "save_steps": SAVE, "seed": 0,
      "use_cpu": True, "disable_tqdm": True, "max_records": 6}


def _rl(root, out: str, monkeypatch, **overrides):
    """The rl stage's run(), its checkpoints kept (as a killed run leaves them)."""
    import stages.rl as rl
    from videoreasoner.training.rewards import REGISTRY

    monkeypatch.setitem(REGISTRY, "distinct_characters", distinct_characters_reward)
    monkeypatch.setattr(rl, "finish_checkpoints", lambda _dir: None)
    summary = rl.run(rl.RLRun(rl={**RL, **overrides}, rewards=[{"name": "distinct_characters", "weight": 1.0}],
                              video=VIDEO, model_dir=root / "models/base",
                              train_file=root / "data/validated/train.jsonl", video_root=root,
                              out_dir=root / out, reports_dir=root / "reports" / out,
                              checkpoint_dir=root / "checkpoints/rl", tracking=False))
    return summary, load_model_and_processor(root / out)[0]


@pytest.mark.parametrize("lora", [None, {"enabled": True, "r": 4, "lora_alpha": 8,
                                          "target_modules": ["q_proj", "v_proj"]}], ids=["full", "lora"])
def test_rl_resumed_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(workspace, monkeypatch, lora):
    extra = {"lora": lora} if lora else {}
    shutil.rmtree(workspace / "checkpoints/rl", ignore_errors=True)
    whole_summary, whole = _rl(workspace, "rl_whole", monkeypatch, **extra)
    assert whole_summary["resumed_from_step"] == 0
    base = weights(load_model_and_processor(workspace / "models/base")[0])
    assert any(not torch.equal(base[k], v) for k, v in weights(whole).items()), "rl must have trained"
    shutil.rmtree(workspace / "checkpoints/rl" / f"checkpoint-{STEPS}")
    summary, resumed = _rl(workspace, "rl_resumed", monkeypatch, **extra)
    assert summary["resumed_from_step"] == SAVE and summary["steps"] == STEPS
    assert summary["final_reward"] == pytest.approx(whole_summary["final_reward"], rel=1e-5)
    assert_same_weights(weights(resumed), weights(whole))


def test_alignment_of_a_built_tiny_model_resumes_weight_exact(workspace, monkeypatch):
    """bootstrap's perception alignment trains a model built from a config (not loaded by from_pretrained,
    so transformers attached no key conversions to it): its resume must be exact too."""
    import stages.bootstrap as bootstrap

    monkeypatch.setattr(bootstrap, "finish_checkpoints", lambda _dir: None)
    alignment = trl_params(STEPS, save_strategy="steps", save_steps=SAVE, lr_scheduler_type="linear")

    def align(out: str):
        bootstrap.run(bootstrap.BootstrapRun(
            model={"base": "tiny", "tiny": TINY_SIZES, "alignment": alignment}, video=VIDEO,
            train_file=workspace / "data/validated/train.jsonl", video_root=workspace, out_dir=workspace / out,
            report_path=workspace / f"reports/{out}.json", checkpoint_dir=workspace / "checkpoints/bootstrap",
            tracking=False))
        return weights(load_model_and_processor(workspace / out)[0])

    whole = align("aligned_whole")
    shutil.rmtree(workspace / "checkpoints/bootstrap" / f"checkpoint-{STEPS}")
    assert_same_weights(align("aligned_resumed"), whole)


def test_the_resume_check_compares_zero3_weights_gathered_whole(workspace, tmp_path, monkeypatch):
    """Under ZeRO-3 a parameter's own tensor is an empty partition: the check compares the weights every
    rank gathered whole (`whole_state_dict`: the weights on rank 0, None on the others, which only take
    part in the gathering). It used to skip ZeRO-3 with a warning, comparing nothing."""
    import videoreasoner.training.checkpoint_weights as weights

    model, _ = load_model_and_processor(workspace / "models/base")
    model.save_pretrained(tmp_path / "ckpt")
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)   # a mismatch, to be found in the gathered weights
    model.lm_head.weight.ds_id = 0       # what DeepSpeed ZeRO-3 marks a partitioned parameter with
    monkeypatch.setattr(weights, "whole_state_dict", lambda m: dict(m.state_dict()))  # rank 0
    with pytest.raises(CheckpointMismatch, match="lm_head.weight"):
        weights._VerifyResumedWeights(tmp_path / "ckpt").on_train_begin(None, None, None, model=model)
    monkeypatch.setattr(weights, "whole_state_dict", lambda m: None)  # rank 1: compares nothing itself
    weights._VerifyResumedWeights(tmp_path / "ckpt").on_train_begin(None, None, None, model=model)
