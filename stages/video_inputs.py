"""The one way a record becomes model input, shared by sft, rl, tts and evaluate.

1. `sample_video(path, cfg)`: choose frame indices (params `video`), decode them with PyAV, and keep
   their real timestamps (seconds, frame k of the file at k / file_fps) and the sampled rate.
2. `build_messages(record, video)`: the chat (user: video + build_prompt(record); assistant:
   the target from stages/answer_format), never a prompt written anywhere else.
3. `processor_inputs(processor, conversations, videos, cfg)`: tokens and pixels through the standard
   processor, always with `video_metadata` carrying the real sampled fps. Without it transformers
   assumes 24 fps and silently corrupts Qwen2.5-VL's `second_per_grid_ts` (DESIGN.md section 6).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from stages.answer_format import build_prompt, format_direct_target, format_target
from stages.video_io import VideoError, decode_frames, probe

# Qwen2.5-VL's vision special tokens (never to be generated) and the processor's per-video tensors.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")

SAMPLERS = ("uniform",)


@dataclass(frozen=True)
class VideoConfig:
    """Params `video`: one setting for training and evaluation (recorded with every metric).

    fps: target sampling rate (frames per second of video time); the frame count is clamped to
    [min_frames, max_frames] and rounded down to a multiple of temporal_patch_size (2 for Qwen2.5-VL,
    so the processor never pads by repeating a frame). max_pixels / min_pixels: per-frame pixel budget
    handed to the processor (112×112 = 12544 keeps the synthetic frames at their size).
    """

    fps: float = 1.0
    min_frames: int = 4
    max_frames: int = 8
    max_pixels: int = 112 * 112
    min_pixels: int = 28 * 28 * 4
    sampler: str = "uniform"
    temporal_patch_size: int = 2

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "VideoConfig":
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(params) - known):
            raise ValueError(f"params video: unknown key '{unknown[0]}' (known: {sorted(known)})")
        cfg = cls(**params)
        if cfg.sampler not in SAMPLERS:
            raise ValueError(f"params video.sampler: unknown sampler {cfg.sampler!r} (known: {SAMPLERS})")
        if not 0 < cfg.min_frames <= cfg.max_frames or cfg.fps <= 0:
            raise ValueError("params video: need fps > 0 and 0 < min_frames <= max_frames")
        if cfg.min_pixels > cfg.max_pixels:
            raise ValueError("params video: min_pixels must not exceed max_pixels")
        return cfg

    def processor_size(self) -> dict[str, int]:
        """The processor's `size` (pixels per frame): shortest_edge = min, longest_edge = max."""
        return {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}


@dataclass(frozen=True)
class SampledVideo:
    """Frames taken from a file. timestamps: seconds of each frame in the file; sampled_fps: frames
    per second of video time actually kept (n_kept / n_file_frames × file_fps)."""

    path: str
    frames: np.ndarray          # T×H×W×3 uint8 RGB
    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    sampled_fps: float
    file_fps: float
    n_file_frames: int

    def metadata(self) -> dict[str, Any]:
        """`video_metadata` for the processor: the frames passed are all the frames it sees, so
        total_num_frames = T and fps = the sampled rate (its `sampled_fps` is then exactly ours)."""
        t, h, w = self.frames.shape[:3]
        return {"total_num_frames": t, "fps": self.sampled_fps, "frames_indices": list(range(t)),
                "duration": self.n_file_frames / self.file_fps, "height": h, "width": w}

    def with_frames(self, frames: np.ndarray) -> "SampledVideo":
        """Same timing, other pixels (blank or shuffled frames for video-blind controls)."""
        return replace(self, frames=frames)


def num_frames(n_file_frames: int, file_fps: float, cfg: VideoConfig) -> int:
    """How many frames to keep: duration × cfg.fps, clamped, a multiple of the temporal patch."""
    want = round(n_file_frames / file_fps * cfg.fps)
    want = min(max(want, cfg.min_frames), cfg.max_frames, n_file_frames)
    step = cfg.temporal_patch_size
    return max(step, want // step * step) if n_file_frames >= step else n_file_frames


def sample_indices(n_file_frames: int, file_fps: float, cfg: VideoConfig) -> list[int]:
    """Uniform sampler: frame k of n kept is the file frame floor(k × n_file_frames / n) (the first
    frame included, spacing as even as the file's frame grid allows)."""
    n = num_frames(n_file_frames, file_fps, cfg)
    return [math.floor(k * n_file_frames / n) for k in range(n)]


def sample_video(path: str | Path, cfg: VideoConfig) -> SampledVideo:
    """Decode the frames `cfg` selects from the file at `path` (PyAV)."""
    info = probe(path, decode=False)
    n_file = info.n_frames
    if n_file <= 0:  # containers that do not store a frame count
        n_file = probe(path, decode=True).n_frames
    indices = sample_indices(n_file, info.fps, cfg)
    frames, file_fps = decode_frames(path, indices)
    if len(frames) != len(indices):
        raise VideoError(f"{path}: decoded {len(frames)} frames, expected {len(indices)}")
    return SampledVideo(
        path=str(path), frames=frames, indices=tuple(indices),
        timestamps=tuple(i / file_fps for i in indices),
        sampled_fps=len(indices) / n_file * file_fps, file_fps=file_fps, n_file_frames=n_file)


def user_text(record: dict) -> str:
    """The user turn's text: question, options and answer-format instruction (stages/answer_format)."""
    return build_prompt(record)


def assistant_text(record: dict) -> str:
    """The training target: `<think>reasoning</think><answer>…</answer>` for reasoning records; the
    direct `<answer>…</answer>` for perception records, which carry no reasoning."""
    if record.get("reasoning"):
        return format_target(record)
    return format_direct_target(record)


def build_messages(record: dict, video: Any = None, with_target: bool = True) -> list[dict]:
    """The chat for one record. `video` fills the video block: decoded frames (T×H×W×3) for the
    processor, or a path/None as a placeholder in dataset rows. with_target=False gives the prompt only
    (generation: rl, tts, evaluate)."""
    messages = [{"role": "user", "content": [{"type": "video", "video": video},
                                             {"type": "text", "text": user_text(record)}]}]
    if with_target:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": assistant_text(record)}]})
    return messages


def _with_frames(messages: list[dict], video: SampledVideo) -> list[dict]:
    """A copy of `messages` whose (single) video block holds `video.frames`; other blocks keep only
    their non-empty keys (dataset rows carry every key)."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{"type": "video", "video": video.frames} if b["type"] == "video"
                       else {k: v for k, v in b.items() if v is not None} for b in content]
        out.append({"role": message["role"], "content": content})
    return out


def processor_inputs(processor, conversations: list[list[dict]], videos: list[SampledVideo],
                     cfg: VideoConfig, *, add_generation_prompt: bool = False,
                     assistant_mask: bool = False, chat_template: str | None = None,
                     padding_side: str = "right", max_length: int | None = None):
    """Tokenise a batch of chats (one video each) with the processor's chat template.

    Returns the processor's BatchFeature: input_ids, attention_mask, pixel_values_videos,
    video_grid_thw, second_per_grid_ts (seconds per temporal patch = temporal_patch_size / sampled
    fps), and assistant_masks when `assistant_mask` (needs `{% generation %}` markers).
    """
    if len(conversations) != len(videos):
        raise ValueError(f"{len(conversations)} conversations but {len(videos)} videos")
    filled = [_with_frames(conv, video) for conv, video in zip(conversations, videos)]
    kwargs = {
        "video_metadata": [v.metadata() for v in videos],
        "size": cfg.processor_size(),
        "do_sample_frames": False,
        "cap_pixels_per_frame": True,
        "padding": True,
        "padding_side": padding_side,
        "add_special_tokens": False,
    }
    if max_length is not None:
        kwargs.update(truncation=True, max_length=max_length)
    return processor.apply_chat_template(
        filled, chat_template=chat_template, tokenize=True, return_dict=True, return_tensors="pt",
        add_generation_prompt=add_generation_prompt, return_assistant_tokens_mask=assistant_mask,
        processor_kwargs=kwargs)
