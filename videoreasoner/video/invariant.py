"""Run-time check that the video reaches the model: every forward has as many video features as video
placeholder tokens (and the same for images), on by default wherever a model is loaded or built.

Why: a forward that drops the video does not fail. Qwen2.5-VL (transformers 5.23) embeds its
<|video_pad|> placeholders as plain text when `pixel_values_videos` is absent, and it only compares
the *total* number of placeholders with the features the vision tower returns, so a `video_grid_thw`
that splits the same patches differently between videos also passes (wrong attention blocks and
positions). TRL 1.16's GRPOTrainer drops the video from its loss forward exactly this way (docs/architecture.md). `install_video_invariant(model)` adds a forward pre-hook that raises VideoInputError instead.

What a forward must satisfy, per modality (video: <|video_pad|>, pixel_values_videos, video_grid_thw;
image: <|image_pad|>, pixel_values, image_grid_thw), where a grid row (t, h, w) counts patches and a
video gives t·h·w / spatial_merge_size² features:
- placeholders present -> pixels present (or pre-encoded `mm_encoder_outputs` for that modality);
- pixels present -> a grid, and pixel rows = Σ t·h·w;
- each run of consecutive placeholders (one video in Qwen's template) has exactly its grid row's features.
A cached generation step (the new token only, no placeholders, no pixels; grids may still be passed)
passes. A forward given only
`inputs_embeds` has no ids to count and is not checked. Cost: one compare and sum over input_ids per
forward (one device sync); the per-video comparison runs only when placeholders are present.

`check_rows_have_video` is the second, caller-side check: where every row must carry a video (sft
collator, rl prompts, the inference engine), a row without any placeholder (a prompt built without its
video) is an error naming the row.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# (name, placeholder id attribute of the model config, pixel kwarg, grid kwarg, mm_encoder_outputs key)
MODALITIES = (
    ("video", "video_token_id", "pixel_values_videos", "video_grid_thw", "video"),
    ("image", "image_token_id", "pixel_values", "image_grid_thw", "image"),
)


class VideoInputError(ValueError):
    """A forward's vision inputs disagree with its placeholder tokens (the video would be dropped or misread)."""


def _run_lengths(mask: torch.Tensor) -> tuple[list[int], list[int]]:
    """(row, length) of every run of True in a B×L mask, in row-major order; runs never cross rows."""
    import torch
    import torch.nn.functional as F

    step = F.pad(mask.to(torch.int8), (1, 1)).diff(dim=1)  # +1 where a run starts, -1 after it ends
    starts, ends = (step == 1).nonzero(), (step == -1).nonzero()  # (row, column), row-major
    return starts[:, 0].tolist(), (ends[:, 1] - starts[:, 1]).tolist()


def check_modality(input_ids: torch.Tensor, token_id: int, merge: int, pixels: Any, grid: Any,
                   precomputed: bool, name: str, pixel_key: str, grid_key: str) -> int:
    """Raise VideoInputError unless one modality's inputs agree with its placeholders; return the count."""
    mask = input_ids == token_id
    mask = mask if mask.dim() > 1 else mask[None]
    per_row = mask.sum(dim=-1).tolist()  # the one device sync of a forward without pixels
    n_tokens = sum(per_row)
    if n_tokens == 0 and pixels is None:
        return 0  # text-only rows, or a cached generation step (grids may ride along; no pixels to place)
    if precomputed:
        return n_tokens  # pre-encoded features: the model compares their length itself
    if n_tokens and pixels is None:
        raise VideoInputError(
            f"{n_tokens} {name} placeholder tokens (id {token_id}) but no {pixel_key}: the model would read "
            f"them as text and never see the {name}")
    if grid is None:
        raise VideoInputError(f"{pixel_key} given without {grid_key}")
    sizes = grid.tolist()
    patches = [t * h * w for t, h, w in sizes]
    if pixels is not None and pixels.shape[0] != sum(patches):
        raise VideoInputError(f"{pixel_key} has {pixels.shape[0]} patch rows but {grid_key} "
                              f"{sizes} gives {sum(patches)} patches")
    features = [p // merge ** 2 for p in patches]
    if per_row == features:
        return n_tokens  # one video per row, each with its own count: the common case, no run search
    rows, runs = _run_lengths(mask)
    if runs != features:
        raise VideoInputError(
            f"{name} placeholders per {name} {runs} (rows {rows}) but {grid_key} {sizes} gives "
            f"features {features} (t·h·w / {merge}²): {sum(runs)} placeholder tokens for {sum(features)} features")
    return n_tokens


class VideoInvariant:
    """The forward pre-hook (with kwargs) of one model. `forwards`: forwards checked; `with_vision`:
    those that carried placeholders (a training step or a generation's prefill)."""

    def __init__(self, config):
        self.merge = int(getattr(getattr(config, "vision_config", None), "spatial_merge_size", 2) or 2)
        self.token_ids = {name: getattr(config, attr, None) for name, attr, *_ in MODALITIES}
        self.forwards = 0
        self.with_vision = 0

    def check(self, kwargs: dict[str, Any], args: tuple = ()) -> None:
        import torch  # imported here: loading this module (model_io, the collators) stays torch-free

        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(input_ids, torch.Tensor):
            return  # inputs_embeds only: nothing to count
        self.forwards += 1
        encoded = kwargs.get("mm_encoder_outputs") or {}
        seen = 0
        for name, _, pixel_key, grid_key, enc_key in MODALITIES:
            token_id = self.token_ids[name]
            if token_id is None:
                continue
            seen += check_modality(input_ids, token_id, self.merge, kwargs.get(pixel_key), kwargs.get(grid_key),
                                   encoded.get(enc_key) is not None, name, pixel_key, grid_key)
        self.with_vision += bool(seen)

    def __call__(self, module, args, kwargs):
        self.check(kwargs, args)
        return None


def install_video_invariant(model) -> VideoInvariant | None:
    """Check every forward of `model` (a transformers vision-language model, before any PEFT/DeepSpeed
    wrapping, which call it). Idempotent; returns the hook, or None for a model without video tokens."""
    if model is None:
        return None
    existing = video_invariant(model)
    if existing is not None:
        return existing
    config = getattr(model, "config", None)
    if getattr(config, "video_token_id", None) is None:
        log.debug("%s has no video_token_id: no video invariant", type(model).__name__)
        return None
    hook = VideoInvariant(config)
    model.register_forward_pre_hook(hook, with_kwargs=True)
    return hook


def video_invariant(model) -> VideoInvariant | None:
    """The hook installed on `model` (kept in torch's own hook table, so copies of the model keep it), or None."""
    return next((h for h in getattr(model, "_forward_pre_hooks", {}).values() if isinstance(h, VideoInvariant)), None)


def remove_video_invariant(model) -> None:
    """Take the check off `model` (tests that show what happens without it)."""
    hooks = model._forward_pre_hooks
    for key in [k for k, h in hooks.items() if isinstance(h, VideoInvariant)]:
        del hooks[key]
        model._forward_pre_hooks_with_kwargs.pop(key, None)


def processor_video_token_id(processor) -> int:
    """The <|video_pad|> id of a Qwen2-VL / Qwen2.5-VL processor."""
    token_id = getattr(processor, "video_token_id", None)
    if token_id is None:
        token_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    return int(token_id)


def check_rows_have_video(input_ids: torch.Tensor, video_token_id: int, row_names: Sequence[str], where: str) -> None:
    """Raise VideoInputError naming the rows of `input_ids` (B×L) that hold no video placeholder token.

    row_names: one label per row (record id and video file); where: which batch this is (stage, file)."""
    empty = ((input_ids == video_token_id).sum(dim=-1) == 0).nonzero().flatten().tolist()
    if empty:
        names = ", ".join(str(row_names[i]) if i < len(row_names) else f"row {i}" for i in empty)
        raise VideoInputError(f"{where}: {len(empty)} of {len(input_ids)} rows have no video placeholder token "
                              f"(field 'video' of {names}): the prompt was built without its video")
