"""sft: assistant-only labels, TRL config parsing, a short run end to end (MLflow, metrics, weights)."""
import json
import math

import pytest

from videoreasoner.core.atomic import read_jsonl
from stages.bootstrap import BootstrapRun
from stages.bootstrap import run as bootstrap
from stages.sft import SFTRun, run
from videoreasoner.data.selection import select_records
from videoreasoner.training.sft_data import IGNORE_INDEX, VideoSFTCollator, to_dataset
from videoreasoner.training.checkpoints import prepare_checkpoints
from videoreasoner.training.trl_config import parse_trl_config
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import assistant_text
from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A generated world and an unaligned tiny base in models/base."""
    root = make_workspace(tmp_path_factory.mktemp("ws"))
    bootstrap(BootstrapRun(model={"base": "tiny", "tiny": TINY_SIZES}, video=VIDEO,
                           train_file=root / "data/validated/train.jsonl", video_root=root,
                           out_dir=root / "models/base", report_path=root / "reports/bootstrap.json",
                           tracking=False))
    return root


def sft_run(root, sft, **kw):
    return SFTRun(sft=sft, video=VIDEO, base_dir=root / "models/base",
                  train_file=root / "data/validated/train.jsonl", val_file=root / "data/validated/val.jsonl",
                  video_root=root, out_dir=root / kw.pop("out", "models/sft"),
                  metrics_path=root / "reports/sft/metrics.json", checkpoint_dir=root / "checkpoints/sft",
                  **kw)


def test_reasoning_records_exclude_perception_items():
    records = [{"id": "a", "meta": {"kind": "perception"}}, {"id": "b", "meta": {"kind": "reasoning"}},
               {"id": "c"}]
    assert [r["id"] for r in select_records(records, "reasoning")] == ["b", "c"]
    assert [r["id"] for r in select_records(records, "perception")] == ["a"]


def test_labels_are_the_assistant_target_only(workspace):
    from videoreasoner.training.model_io import load_model_and_processor

    root = workspace
    _, processor = load_model_and_processor(root / "models/base")
    records = select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")[:3]
    rows = list(to_dataset(records, root))
    assert all(r["images"] == [] for r in rows)  # makes TRL treat the dataset as a vision dataset
    batch = VideoSFTCollator(processor, VideoConfig.from_params(VIDEO))(rows)
    for i, record in enumerate(records):
        kept = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert processor.tokenizer.decode(kept) == assistant_text(record) + "<|im_end|>"
    assert "pixel_values_videos" in batch and "second_per_grid_ts" in batch


def test_trl_config_is_parsed_by_trl_with_risky_defaults_required(tmp_path):
    from trl import SFTConfig

    args = parse_trl_config(SFTConfig, trl_params(3), tmp_path)
    assert (args.bf16, args.activation_checkpointing, args.max_steps) == (False, False, 3)
    assert args.output_dir == str(tmp_path) and args.report_to in ("none", [])
    bad = trl_params()
    del bad["bf16"]
    with pytest.raises(ValueError, match="'bf16' must be set explicitly"):
        parse_trl_config(SFTConfig, bad, tmp_path)
    with pytest.raises(ValueError, match="learning_rat"):
        parse_trl_config(SFTConfig, {**trl_params(), "learning_rat": 1.0}, tmp_path)


def test_checkpoints_of_another_configuration_are_not_resumed(tmp_path):
    (tmp_path / "checkpoint-4").mkdir(parents=True)
    (tmp_path / "checkpoint-4/trainer_state.json").write_text("{}")
    assert prepare_checkpoints(tmp_path, "a") is None  # no fingerprint yet: cleared
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4/trainer_state.json").write_text("{}")
    assert prepare_checkpoints(tmp_path, "a").name == "checkpoint-4"
    assert prepare_checkpoints(tmp_path, "b") is None and not (tmp_path / "checkpoint-4").exists()


def test_sft_trains_saves_and_logs_to_mlflow(workspace, monkeypatch, tmp_path):
    import mlflow

    from videoreasoner.training.model_io import load_model_and_processor

    root = workspace
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    metrics = run(sft_run(root, {**trl_params(3), "loss_gap_items": 1}))
    on_disk = json.loads((root / "reports/sft/metrics.json").read_text())
    assert on_disk["steps"] == metrics["steps"] == 3 and on_disk["resumed_from_step"] == 0
    n_reasoning = len(select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning"))
    assert on_disk["records"] == n_reasoning
    for key in ("train_loss", "final_loss", "samples_per_second", "seconds", "loss_gap_shuffled_minus_correct"):
        assert math.isfinite(on_disk[key]), key
    assert on_disk["video"]["fps"] == VIDEO["fps"]
    assert not (root / "checkpoints/sft").exists()  # resume checkpoints are dropped once weights are saved
    model, _ = load_model_and_processor(root / "models/sft")
    assert model.config.text_config.hidden_size == TINY_SIZES["hidden_size"]
    runs = mlflow.search_runs(experiment_names=["videoreasoner"])
    assert len(runs) == 1 and runs.iloc[0]["metrics.steps"] == 3
    assert runs.iloc[0]["params.sft.max_steps"] == "3" and runs.iloc[0]["tags.stage"] == "sft"
    history = mlflow.MlflowClient().get_metric_history(runs.iloc[0]["run_id"], "train/loss")
    assert [m.step for m in history] == [1, 2, 3]


def test_frozen_vision_tower_is_saved_unchanged_and_the_rest_trains(workspace):
    import torch

    from videoreasoner.core.machine import cpu_model

    from videoreasoner.training.model_io import load_model_and_processor

    root = workspace
    before_threads = torch.get_num_threads()
    threads = 1 if before_threads != 1 else 2  # sft.torch_threads is applied to the stage's process
    try:
        metrics = run(sft_run(root, {**trl_params(2), "learning_rate": 1e-2, "freeze_vision": True,
                                     "torch_threads": threads}, out="models/sft_frozen", tracking=False))
        assert torch.get_num_threads() == threads
        # the machine beside the numbers: another CPU gives other float rounding and other weights
        assert metrics["machine"]["torch_threads"] == threads and metrics["machine"]["cpu"] == cpu_model()
    finally:
        torch.set_num_threads(before_threads)
    base, _ = load_model_and_processor(root / "models/base")
    tuned, _ = load_model_and_processor(root / "models/sft_frozen")
    before, after = dict(base.named_parameters()), dict(tuned.named_parameters())
    vision = [n for n in before if n.startswith("model.visual.")]
    assert vision and all(torch.equal(before[n], after[n]) for n in vision)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])


def test_length_grouped_batches_get_the_length_column_they_sort_on(workspace):
    """TRL drops columns outside its signature; group_by_length needs `length`, added only then."""
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.training.sft_trainer import with_lengths

    root = workspace
    records = select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")[:4]
    _, processor = load_model_and_processor(root / "models/base")
    lengths = with_lengths(to_dataset(records, root), processor)["length"]
    assert len(lengths) == 4 and all(n > 10 for n in lengths)
    metrics = run(sft_run(root, {**trl_params(1), "train_sampling_strategy": "group_by_length"},
                          out="models/sft_grouped", tracking=False))
    assert metrics["steps"] == 1


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_torch_threads_must_be_a_positive_integer(workspace, threads):
    with pytest.raises(ValueError, match="sft.torch_threads must be null or an integer >= 1"):
        run(sft_run(workspace, {**trl_params(1), "torch_threads": threads}, out="models/sft_threads", tracking=False))
    assert not (workspace / "models/sft_threads").exists()


def test_lora_run_saves_merged_weights(workspace):
    from videoreasoner.training.model_io import load_model_and_processor

    root = workspace
    lora = {"enabled": True, "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    run(sft_run(root, {**trl_params(1), "lora": lora}, out="models/sft_lora", tracking=False))
    assert not (root / "models/sft_lora/adapter_config.json").exists()
    model, _ = load_model_and_processor(root / "models/sft_lora")
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_default_params_sections_parse():
    """The sft/model sections of params.yaml parse with TRL's parser."""
    from pathlib import Path

    import yaml
    from trl import SFTConfig

    from videoreasoner.training.sft_trainer import split_params
    from videoreasoner.training.tiny_model import TinyConfig
    from videoreasoner.training.trl_config import lora_config

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    own, trl = split_params(params["sft"])
    args = parse_trl_config(SFTConfig, trl, "checkpoints/sft")
    assert args.bf16 is False and args.activation_checkpointing is False and args.assistant_only_loss
    lora_config({**own["lora"], "enabled": True})
    parse_trl_config(SFTConfig, split_params(params["model"]["alignment"])[1], "checkpoints/bootstrap")
    TinyConfig.from_params(params["model"]["tiny"])
    VideoConfig.from_params(params["video"])


def test_trainer_forward_receives_the_video_tensors(workspace, tmp_path):
    """The loss forward must see the pixels and their timing (TRL's GRPO trainer silently drops them)."""
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.training.sft_trainer import train

    root = workspace
    model, processor = load_model_and_processor(root / "models/base")
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(set(kwargs)), with_kwargs=True)
    records = select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")[:4]
    _, summary = train(model, processor, records, root, trl_params(1), VideoConfig.from_params(VIDEO),
                       tmp_path / "checkpoints", "test")
    assert summary["steps"] == 1 and seen
    assert all({"pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "labels"} <= keys for keys in seen)


def test_one_rank_clears_stale_checkpoints_before_the_others_look(workspace, tmp_path, monkeypatch):
    """prepare_checkpoints deletes another configuration's checkpoints: on several ranks at once, one
    rank's rmtree would race the others' reads and marker writes. It runs under main_process_first
    across all nodes (as rl's does): rank 0 first, the others after it."""
    import contextlib

    from trl import SFTConfig

    from videoreasoner.training import sft_trainer
    from videoreasoner.training.model_io import load_model_and_processor

    guarded, calls = [], []

    @contextlib.contextmanager
    def main_process_first(self, local=True, desc="work"):
        guarded.append(local)
        yield
        guarded.pop()

    real = sft_trainer.prepare_checkpoints
    monkeypatch.setattr(SFTConfig, "main_process_first", main_process_first)
    monkeypatch.setattr(sft_trainer, "prepare_checkpoints",
                        lambda *a: calls.append(list(guarded)) or real(*a))
    model, processor = load_model_and_processor(workspace / "models/base")
    records = select_records(read_jsonl(workspace / "data/validated/train.jsonl"), "reasoning")[:2]
    sft_trainer.train(model, processor, records, workspace, trl_params(1), VideoConfig.from_params(VIDEO),
                      tmp_path / "checkpoints", "test")
    assert calls == [[False]]  # inside main_process_first, across nodes (local=False)


def test_model_version_follows_the_weights_not_only_the_config(tmp_path, monkeypatch):
    """Two runs with one config and equal file sizes but different weights get different versions;
    a byte-identical copy gets the same one; big weight files are identified from sampled chunks."""
    import shutil

    from videoreasoner.training import checkpoints
    from videoreasoner.training.checkpoints import model_digest

    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text('{"hidden_size": 8}')
    (a / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    shutil.copytree(a, tmp_path / "copy")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    weights = bytearray((b / "model.safetensors").read_bytes())
    weights[5000] ^= 1
    (b / "model.safetensors").write_bytes(bytes(weights))
    assert model_digest(a) == model_digest(tmp_path / "copy") != model_digest(b)
    monkeypatch.setattr(checkpoints, "_WHOLE_FILE_BYTES", 1024)
    monkeypatch.setattr(checkpoints, "_SAMPLE_BYTES", 256)
    monkeypatch.setattr(checkpoints, "_SAMPLES", 4)
    assert model_digest(a) == model_digest(tmp_path / "copy")
    weights[0] ^= 1  # inside the first sampled chunk (the safetensors header)
    (b / "model.safetensors").write_bytes(bytes(weights))
    assert model_digest(a) != model_digest(b)
