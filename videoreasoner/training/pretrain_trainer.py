"""Pretraining the tiny base: the SFT trainer's language-model loss on direct-answer perception items,
plus a dense loss on every merged video token (what colour and shape it shows; see
videoreasoner/training/dense_targets.py).

Why a narrow subclass: TRL's SFTTrainer has no auxiliary losses. The mixin pops the dense targets from
the batch, reads the video features (the tower's merged output) as the ordinary forward computes them
(no second pass), and adds `dense_weight` × (colour + shape soft cross-entropy) to TRL's loss. The head is a
submodule of the model while training (so the optimizer, checkpoints and the exact resume see it) and is
removed before the model is saved: the shipped base is a plain Qwen2.5-VL.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from videoreasoner.data.world.scene import Scene
from videoreasoner.training.dense_targets import COLOUR_CLASSES, SHAPE_CLASSES, token_targets

log = logging.getLogger(__name__)
HEAD_NAME = "dense_head"
TARGET_KEYS = ("dense_colour", "dense_shape")


class DenseTargetCollator:
    """Wrap the SFT collator: add each row's per-token targets (rows in batch order, tokens in the
    tower's order). A row whose video has no known scene is an error naming the file."""

    def __init__(self, collator, scenes: dict[str, Scene], spatial_merge: int = 2, temporal_patch: int = 2):
        self.collator, self.scenes = collator, scenes
        self.spatial_merge, self.temporal_patch = spatial_merge, temporal_patch
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _targets(self, path: str, timestamps: tuple[float, ...], grid: tuple[int, ...]):
        key = (path, timestamps, grid)
        if key not in self._cache:
            scene = self.scenes.get(str(Path(path).resolve()))
            if scene is None:
                raise KeyError(f"pretrain: no scene for video {path}: dense targets need the synthetic world's clips")
            self._cache[key] = token_targets(scene, timestamps, grid, spatial_merge=self.spatial_merge,
                                             temporal_patch=self.temporal_patch)
        return self._cache[key]

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        from videoreasoner.training.sft_data import _video_block_path

        batch = self.collator(examples)
        colour, shape = [], []
        for row, example in enumerate(examples):
            path = _video_block_path(example["messages"])
            clip = self.collator.video(path)
            grid = tuple(int(x) for x in batch["video_grid_thw"][row])
            c, s = self._targets(path, tuple(clip.timestamps), grid)
            colour.append(c)
            shape.append(s)
        batch["dense_colour"] = torch.from_numpy(np.concatenate(colour))
        batch["dense_shape"] = torch.from_numpy(np.concatenate(shape))
        return batch


def attach_head(model):
    """A linear colour head and shape head on the tower's output (the language model's width)."""
    import torch

    width = model.config.text_config.hidden_size
    head = torch.nn.ModuleDict({"colour": torch.nn.Linear(width, len(COLOUR_CLASSES)),
                                "shape": torch.nn.Linear(width, len(SHAPE_CLASSES))})
    setattr(model, HEAD_NAME, head.to(next(model.parameters()).dtype))
    return model


def detach_head(model):
    """Remove the head (before saving): the result has exactly the keys of a plain Qwen2.5-VL."""
    if hasattr(model, HEAD_NAME):
        delattr(model, HEAD_NAME)
    return model


def _soft_ce(logits, target):
    import torch

    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


class DenseSupervisionMixin:
    """Trainer mixin: loss = TRL's loss + dense_weight × (colour CE + shape CE) on the video tokens.
    The tower's output row count must equal the targets' (the same invariant as video features =
    video placeholder tokens): a mismatch raises rather than training on misaligned labels."""

    dense_weight: float = 1.0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        targets = [inputs.pop(k) for k in TARGET_KEYS]
        core = model.module if hasattr(model, "module") else model
        captured = []
        inner = core.model  # the Qwen2.5-VL backbone: its get_video_features runs the tower once per forward
        original = inner.get_video_features

        def capture(*args, **kwargs):
            out = original(*args, **kwargs)
            pooled = out.pooler_output if hasattr(out, "pooler_output") else out[1]
            captured.append(torch.cat(list(pooled)) if isinstance(pooled, (list, tuple)) else pooled)
            return out

        inner.get_video_features = capture
        try:
            # return_outputs=True would make TRL run a second, logits-building forward
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
        finally:
            del inner.get_video_features  # back to the class's method
        loss, outputs = result if return_outputs else (result, None)
        if not captured:
            raise RuntimeError("pretrain: the forward computed no video features: nothing to supervise")
        features = captured[0]
        colour, shape = (t.to(features.device) for t in targets)
        if features.shape[0] != colour.shape[0]:
            raise RuntimeError(f"pretrain: {features.shape[0]} video tokens from the tower but "
                               f"{colour.shape[0]} dense targets: labels would not line up")
        head = getattr(core, HEAD_NAME)
        dense = _soft_ce(head["colour"](features), colour) + _soft_ce(head["shape"](features), shape)
        self._dense_log = getattr(self, "_dense_log", []) + [float(dense.detach())]
        loss = loss + self.dense_weight * dense
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        if getattr(self, "_dense_log", None) and "loss" in logs:
            logs["dense_loss"] = round(float(np.mean(self._dense_log)), 4)
            self._dense_log = []
        return super().log(logs, *args, **kwargs)


VISION_PREFIXES = ("model.visual.", HEAD_NAME + ".")  # the tower, its merger and the dense head


class VisionLearningRateMixin:
    """Trainer mixin: the vision tower, merger and dense head train at `vision_learning_rate`, the language
    model at the config's `learning_rate` (None: one rate for all). The language model keeps the look-up
    skill of its warm-up only at a low rate, while the tower learns to see far faster at a high one.

    Why a mixin: transformers' Trainer has one learning rate. This splits each of its parameter groups
    (weight decay or not) into a vision and a language part, so the optimizer class and its settings
    stay the Trainer's (the groups are replaced in place, before any step); the scheduler then scales both
    parts alike."""

    vision_learning_rate: float | None = None

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.vision_learning_rate is None or any("part" in g for g in optimizer.param_groups):
            return optimizer  # one rate, or already split (the Trainer may ask again)
        names = {id(p): n for n, p in (self.model if model is None else model).named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            for part, lr in (("vision", float(self.vision_learning_rate)), ("language", group["lr"])):
                params = [p for p in group["params"] if names[id(p)].startswith(VISION_PREFIXES) == (part == "vision")]
                if params:
                    groups.append({**settings, "params": params, "lr": lr, "part": part})
        if not any(g["part"] == "vision" for g in groups):
            raise ValueError(f"vision_learning_rate set, but no trained parameter is named {VISION_PREFIXES}")
        optimizer.param_groups.clear()  # no step taken yet: no state to carry over
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer


def dense_trainer_class(dense_weight: float, vision_learning_rate: float | None = None):
    """ExactResumeSFTTrainer with the dense loss at `dense_weight` and, when set, the vision parts at
    their own learning rate."""
    from videoreasoner.training.sft_trainer import exact_resume_sft_trainer

    return type("DenseSupervisedSFTTrainer", (VisionLearningRateMixin, DenseSupervisionMixin,
                                              exact_resume_sft_trainer()),
                {"dense_weight": float(dense_weight),
                 "vision_learning_rate": None if vision_learning_rate is None else float(vision_learning_rate)})
