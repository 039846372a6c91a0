"""Test fixtures: a tiny generated world laid out like a workspace after `validate`, and tiny params.

`make_workspace(root)` writes root/data/raw/synthetic/{videos,annotations.jsonl} and
root/data/validated/{train,val,test}.jsonl with `video` relative to root (as the pipeline does).
"""
from __future__ import annotations

import json
from pathlib import Path

from videoreasoner.core.atomic import write_jsonl

WORLD_VIDEOS = {"train": 3, "val": 1}

# A handful of steps, batch 2: seconds on 2 CPU cores.
TINY_SIZES = {"vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "intermediate_size": 128, "vision_hidden_size": 32,
              "vision_depth": 1, "vision_heads": 2, "vision_intermediate_size": 64,
              "seed": 0, "pixel_mean": None, "pixel_std": None}  # the test models as before params' defaults
VIDEO = {"fps": 1.0, "min_frames": 4, "max_frames": 4, "max_pixels": 112 * 112}


def trl_params(max_steps: int = 2, **overrides) -> dict:
    """SFTConfig fields for a few-step CPU run."""
    params = {"max_steps": max_steps, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
              "lr_scheduler_type": "constant", "bf16": False, "fp16": False, "activation_checkpointing": False,
              "assistant_only_loss": True, "logging_steps": 1, "save_strategy": "no", "seed": 0,
              "dataloader_pin_memory": False, "disable_tqdm": True, "optim": "adamw_torch", "use_cpu": True}
    params.update(overrides)
    return params


def make_workspace(root: Path, videos: dict[str, int] | None = None, seed: int = 3) -> Path:
    """Generate the world under root and write validated-style split files; return root."""
    from stages.generate import run
    from videoreasoner.data.world.config import WorldConfig

    raw = root / "data/raw/synthetic"
    run(WorldConfig(seed=seed, videos=videos or WORLD_VIDEOS, workers=1, objects=(1, 4), box_step_s=1.0), raw)
    records = [json.loads(line) for line in (raw / "annotations.jsonl").read_text().splitlines()]
    for split in ("train", "val", "test"):
        rows = [{**r, "video": f"data/raw/synthetic/{r['video']}"} for r in records if r["split"] == split]
        write_jsonl(root / f"data/validated/{split}.jsonl", rows)
    return root


def distinct_characters_reward():
    """A reward factory whose scores differ between the samples of a group even for an untrained model
    (the project's rewards give such a model 0 everywhere: zero advantages, weights untouched), for tests
    that need RL to change the weights. Register it with `REGISTRY["distinct_characters"] = ...`."""
    from videoreasoner.training.rewards import completion_text

    def distinct_characters(completions, **_columns):
        return [len(set(completion_text(c))) / 10.0 for c in completions]
    return distinct_characters


def pausing_callback(make_callback, after_step: int, marker: str):
    """Wraps a stage's `trainer_callback` factory: the callback it returns also writes `marker` (a file in
    the working directory, holding the process id) and then waits, at the beginning of step
    `after_step + 1`, so a test can kill the process at a known point (step `after_step` logged and,
    if due, saved; nothing later)."""
    import os
    import time

    def make(run):
        callback = make_callback(run)

        def on_step_begin(args, state, control, **kwargs):
            if state.global_step == after_step:
                Path(f"{marker}.tmp").write_text(str(os.getpid()))
                os.replace(f"{marker}.tmp", marker)  # whole or absent: a reader never sees it half-written
                while True:
                    time.sleep(1)
        callback.on_step_begin = on_step_begin
        return callback
    return make
