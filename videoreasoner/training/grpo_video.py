"""GRPO on video: the narrowest subclass of TRL 1.16's GRPOTrainer that keeps the video in every forward.

Why it exists (checked on this stack, docs/architecture.md): the stock trainer generates with the video
(its chat template call returns pixel_values_videos, video_grid_thw, second_per_grid_ts and
mm_token_type_ids and `generate` gets them), but `_generate_and_score_completions` builds the loss
inputs only for *images*. The policy, reference and adapter-disabled reference forwards then see the
<|video_pad|> placeholders as plain text tokens, with 1-D positions: the loss trains a video-blind
model, silently. The stock generation may also sample a <|video_pad|> (only the image token is
suppressed), which would mismatch the number of video features, and frames that reach the processor
without `video_metadata` are timed at 24 fps (wrong `second_per_grid_ts`).

What this class changes, and nothing else:
- `_tokenize_prompts`: prompts are built from the dataset rows with videoreasoner.video.inputs (PyAV frames,
  their real sampled fps, the shared chat template), never by loading a path inside transformers.
- `_generate_and_score_completions`: keeps each row's video tensors, exposes them to the forwards of
  that call (old / reference log-probs) and returns them per row (`video_inputs`), so TRL's shuffle and
  split of the generation batch keep every row with its own video. Optionally drops groups whose
  rewards have zero variance from the loss (they carry no advantage, only dilute the normaliser).
- `_compute_loss`: exposes the rows' video tensors to the policy forward.
- `_get_per_token_logps_and_entropies`: adds the video tensors of exactly the rows in each chunk, plus
  mm_token_type_ids over prompt + completion (Qwen2.5-VL needs them for its 3-D time/height/width
  positions), by handing TRL's own loop a model call with those arguments bound.
- group statistics of our own (the zero-variance filter, T-GRPO's accuracies) gather every rank's rows
  first: TRL's sampler hands consecutive slices of the global batch (rank r: rows [r·n, (r+1)·n)) to the
  processes, so one group's rollouts can sit on several ranks (TRL gathers its rewards the same way).
  `world`, `gather_objects`, `gather_rows`, `local_slice` are collectives (every rank calls them at the
  same point) and the identity on one process.
- generation suppresses every vision special token (<|vision_start|>, <|video_pad|>, <|image_pad|>, ...),
  and `train` ignores the FutureWarning TRL's generation raises by reading a deprecated transformers
  property.

Row layout of `video_inputs[i]`: pixel_values_videos (patches × features, float), video_grid_thw (1 × 3:
temporal patches, height patches, width patches), second_per_grid_ts (1: seconds per temporal patch).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from trl import GRPOTrainer

from videoreasoner.training.checkpoint_weights import ExactResumeMixin
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import VIDEO_KEYS, VISION_TOKENS, SampledVideo, processor_inputs, sample_video
from videoreasoner.video.invariant import check_rows_have_video, install_video_invariant, processor_video_token_id

log = logging.getLogger(__name__)

VIDEO_TOKEN_TYPE, IMAGE_TOKEN_TYPE = 2, 1  # Qwen2.5-VL's mm_token_type_ids values


def split_video_rows(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Per-row video tensors of a processor batch with exactly one video per row."""
    grid = batch["video_grid_thw"]
    sizes = grid.prod(dim=-1).tolist()
    pixels = torch.split(batch["pixel_values_videos"], sizes, dim=0)
    return [{"pixel_values_videos": pixels[i], "video_grid_thw": grid[i:i + 1],
             "second_per_grid_ts": batch["second_per_grid_ts"][i:i + 1]} for i in range(len(sizes))]


def merge_video_rows(rows: list[dict[str, torch.Tensor]], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Inverse of split_video_rows for a chunk of rows, moved to `device`."""
    return {key: torch.cat([row[key] for row in rows]).to(device) for key in VIDEO_KEYS}


class VideoGRPOTrainer(ExactResumeMixin, GRPOTrainer):
    """GRPOTrainer whose dataset rows name a video (`video`, relative to `video_root`) and whose loss and
    reference forwards see that video. Extra arguments: video_config (params `video`), video_root,
    skip_zero_variance_groups."""

    def __init__(self, *args, video_config: VideoConfig, video_root: str | Path = ".",
                 skip_zero_variance_groups: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # The reference model TRL loads itself (beta > 0) never went through model_io: check it too.
        for model in (self.model, self.ref_model):
            if model is not None:
                install_video_invariant(self.accelerator.unwrap_model(model))
        self.video_config = video_config
        self.video_root = Path(video_root)
        self.skip_zero_variance_groups = skip_zero_variance_groups
        self._active_video: list[dict[str, torch.Tensor]] | None = None
        self._encoded: tuple[list[list[int]], dict[str, Any]] | None = None
        self._suppress_vision_tokens()

    def train(self, *args, **kwargs):
        with warnings.catch_warnings():
            # TRL's generation (unwrap_model_for_generation, disable_gradient_checkpointing) reads
            # `model.is_gradient_checkpointing`, which transformers 5.23 deprecated: a FutureWarning at
            # every generation, T-GRPO's shuffled rollouts included, and TRL's to change.
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            return super().train(*args, **kwargs)

    # ---- generation --------------------------------------------------------------------------------
    def _vision_token_ids(self) -> list[int]:
        tok = self._tokenizer
        ids = {tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
        return sorted(i for i in ids if i is not None and i != tok.unk_token_id)

    def _suppress_vision_tokens(self) -> None:
        """A sampled vision token would be counted as a video/image slot in the loss forward."""
        ids = self._vision_token_ids()
        if getattr(self, "generation_kwargs", None) is None:  # vLLM path: not used on this project
            log.warning("no transformers generation config to suppress vision tokens in")
            return
        merged = sorted(set(self.generation_kwargs.get("suppress_tokens") or []) | set(ids))
        self.generation_kwargs["suppress_tokens"] = merged
        self.generation_config.suppress_tokens = merged

    def load_videos(self, rows: list[dict]) -> list[SampledVideo]:
        """Decode each row's frames as params `video` says (real timestamps and sampled fps kept)."""
        return [sample_video(self.video_root / row["video"], self.video_config) for row in rows]

    def encode_rows(self, rows: list[dict], videos: list[SampledVideo]):
        """Prompt token ids (unpadded lists) and the processor's multimodal fields for generation."""
        batch = processor_inputs(self.processing_class, [row["prompt"] for row in rows], videos,
                                 self.video_config, add_generation_prompt=True, padding_side="left")
        check_rows_have_video(batch["input_ids"], processor_video_token_id(self.processing_class),
                              [f"{row.get('id')} ({row.get('video')})" for row in rows], "rl prompts")
        keep = batch["attention_mask"].bool()
        prompt_ids = [ids[m].tolist() for ids, m in zip(batch["input_ids"], keep)]
        fields = {key: batch[key] for key in VIDEO_KEYS}
        fields["mm_token_type_ids"] = [t[m].tolist() for t, m in zip(batch["mm_token_type_ids"], keep)]
        return prompt_ids, fields

    def _tokenize_prompts(self, prompts: list):
        if self._encoded is None:
            raise RuntimeError("VideoGRPOTrainer: prompts must be encoded from dataset rows first")
        prompt_ids, fields = self._encoded
        if len(prompt_ids) != len(prompts):
            raise RuntimeError(f"{len(prompts)} prompts but {len(prompt_ids)} encoded rows")
        return prompt_ids, None, fields

    # ---- scoring and loss --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _video_for(self, rows: list[dict[str, torch.Tensor]]):
        """Make `rows` (one entry per sequence of the batch being scored) visible to the forwards."""
        self._active_video = rows
        try:
            yield
        finally:
            self._active_video = None

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict[str, Any]:
        videos = self.load_videos(inputs)
        prompt_ids, fields = self.encode_rows(inputs, videos)
        rows = split_video_rows(fields)
        # The frames the policy saw (seconds), for rewards that score boxes at frame times.
        inputs = [{**x, "frame_times": list(v.timestamps)} for x, v in zip(inputs, videos)]
        self._encoded = (prompt_ids, fields)
        try:
            with self._video_for(rows):
                output = super()._generate_and_score_completions(inputs)
        finally:
            self._encoded = None
        output["video_inputs"] = rows
        if self.skip_zero_variance_groups:
            self._mask_zero_variance_groups(output)
        return output

    def _compute_loss(self, model, inputs):
        with self._video_for(inputs["video_inputs"]):
            return super()._compute_loss(model, inputs)

    def _mm_token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        types = torch.zeros_like(input_ids)
        if self._video_pad_token_id is not None:
            types[input_ids == self._video_pad_token_id] = VIDEO_TOKEN_TYPE
        if self._image_pad_token_id is not None:
            types[input_ids == self._image_pad_token_id] = IMAGE_TOKEN_TYPE
        return types

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                           **kwargs):
        video = self._active_video
        if video is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                compute_aux_loss, **kwargs)
        n = input_ids.size(0)
        if len(video) != n:
            raise RuntimeError(f"{n} sequences but video inputs for {len(video)} rows")
        batch_size = batch_size or n
        logps, entropies, aux = [], [], []
        for start in range(0, n, batch_size):
            end = min(start + batch_size, n)
            ids = input_ids[start:end]
            bound = functools.partial(model, **merge_video_rows(video[start:end], ids.device),
                                      mm_token_type_ids=self._mm_token_types(ids))
            lp, ent, ax = super()._get_per_token_logps_and_entropies(
                bound, ids, attention_mask[start:end], logits_to_keep, end - start, compute_entropy,
                compute_aux_loss)
            logps.append(lp)
            entropies.append(ent)
            aux.append(ax)
        return (torch.cat(logps), torch.cat(entropies) if compute_entropy else None,
                torch.stack(aux).mean() if compute_aux_loss else None)

    # ---- optional group filter ---------------------------------------------------------------------
    def _mask_zero_variance_groups(self, output: dict[str, Any]) -> None:
        """Remove groups whose rewards are all equal (advantage 0 for every member) from the loss.

        Groups are consecutive blocks of num_generations rows of the *global* batch (TRL's sampler
        order); a group may span ranks, so the advantages are gathered first (zero_variance_rows). The
        masked rows still count in the logged reward statistics. Logs the fraction of groups skipped.
        """
        g = self.num_generations if self.model.training else self.num_generations_eval
        found = zero_variance_rows(output["advantages"], g)
        if found is None:
            return
        flat, fraction = found
        output["completion_mask"] = output["completion_mask"] * (~flat).unsqueeze(1).int()
        mask = output["completion_mask"] * output.get("tool_mask", 1)
        output["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()  # DAPO's normaliser
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["frac_groups_skipped"].append(fraction)


def zero_variance_rows(advantages: torch.Tensor, group_size: int) -> tuple[torch.Tensor, float] | None:
    """(this rank's rows that belong to a zero-variance group, fraction of such groups in the global
    batch), from this rank's advantages; None when the global batch is not whole groups. A collective:
    every rank calls it."""
    every = gather_rows(advantages.detach())
    if every.numel() % group_size:
        return None
    flat_groups = (every.view(-1, group_size).abs() < 1e-8).all(dim=1)
    rows = flat_groups.repeat_interleave(group_size)[local_slice(advantages.numel())]
    return rows.to(advantages.device), flat_groups.float().mean().item()


# ---- statistics over the global batch (collectives; the identity on one process) --------------------
def world() -> tuple[int, int]:
    """(rank, number of processes) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_objects(items: list[Any]) -> list[Any]:
    """Every rank's `items` (picklable), concatenated in rank order: the global batch's row order."""
    _, size = world()
    if size == 1:
        return list(items)
    parts: list[list[Any] | None] = [None] * size
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]  # type: ignore[union-attr]


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Tensors of equal first dimension on every rank, concatenated along it in rank order."""
    _, size = world()
    if size == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)


def local_slice(n_local: int) -> slice:
    """This rank's rows of the global batch (rank r holds rows [r·n_local, (r+1)·n_local), end exclusive),
    as TRL slices its gathered advantages."""
    rank, _ = world()
    return slice(rank * n_local, (rank + 1) * n_local)
