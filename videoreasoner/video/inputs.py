"""The one way a record becomes model input, shared by sft, rl, tts and evaluate.

1. `sample_video(path, cfg)`: choose frame indices with the sampler of params `video.sampler`
   (videoreasoner/video/samplers.py: uniform, fps, keyframes, keyclips), decode them with PyAV (rotation applied or
   the file rejected, params `video.rotation`), and keep their real timestamps (the decoded frames'
   presentation times in seconds, never index / fps) and the sampled rate.
2. `build_messages(record, video)`: the chat (user: video + build_prompt(record); assistant:
   the target from videoreasoner/answers/format), never a prompt written anywhere else.
3. `processor_inputs(processor, conversations, videos, cfg)`: tokens and pixels through the standard
   processor, always with `video_metadata` carrying the real sampled fps. Without it transformers
   assumes 24 fps and silently corrupts Qwen2.5-VL's `second_per_grid_ts` (docs/architecture.md).
   Each call adds its per-video token counts (`video_tokens`) to any open `count_video_tokens()` meter,
   which is how sft, rl, tts and evaluate report video tokens per item.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from videoreasoner.answers.format import build_prompt, format_direct_target, format_target
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.decoding import VideoError, probe_cached, read_frames
from videoreasoner.video.samplers import Clip, centre_indices, num_frames, select

# Qwen2.5-VL's vision special tokens (never to be generated) and the processor's per-video tensors.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


@dataclass(frozen=True)
class SampledVideo:
    """Frames taken from a file. timestamps: presentation time of each frame in the file, seconds from
    the first frame (exact, whatever the sampler or the file's frame rate); sampled_fps: frames kept per
    second of video time (n_kept / duration), for irregular selections and variable-rate files the mean
    rate (see videoreasoner/video/samplers.py on time positions); file_fps: the file's mean rate (n_file_frames /
    duration); duration: seconds the file lasts; sampler / choice: which sampler chose the frames and
    what it chose (change frames, clips, scale)."""

    path: str
    frames: np.ndarray          # T×H×W×3 uint8 RGB
    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    sampled_fps: float
    file_fps: float
    n_file_frames: int
    sampler: str = "uniform"
    choice: dict[str, Any] = field(default_factory=dict)
    duration: float | None = None  # None: n_file_frames / file_fps

    def __post_init__(self):
        # every consumer (prompt, reward, metric) trusts these times: make a mismatch loud here
        if len(self.timestamps) != len(self.frames) or len(self.indices) != len(self.frames):
            raise ValueError(f"{self.path}: {len(self.frames)} frames but {len(self.timestamps)} timestamps "
                             f"and {len(self.indices)} indices")
        if any(b <= a for a, b in zip(self.timestamps, self.timestamps[1:])):
            raise ValueError(f"{self.path}: timestamps are not increasing: {list(self.timestamps)[:8]}")

    def metadata(self) -> dict[str, Any]:
        """`video_metadata` for the processor: the frames passed are all the frames it sees, so
        total_num_frames = T and fps = the sampled rate (its `sampled_fps` is then exactly ours)."""
        t, h, w = self.frames.shape[:3]
        duration = self.duration if self.duration is not None else self.n_file_frames / self.file_fps
        return {"total_num_frames": t, "fps": self.sampled_fps, "frames_indices": list(range(t)),
                "duration": duration, "height": h, "width": w}

    def with_frames(self, frames: np.ndarray) -> "SampledVideo":
        """Same timing, other pixels (blank or shuffled frames for video-blind controls)."""
        return replace(self, frames=frames)


def sample_indices(n_file_frames: int, file_fps: float, cfg: VideoConfig) -> list[int]:
    """Uniform sampler on a constant-rate file: the centres of n equal segments, file frame
    floor((2k + 1) × n_file_frames / 2n) (videoreasoner/video/samplers.py centre_indices)."""
    return centre_indices(n_file_frames, num_frames(n_file_frames, file_fps, cfg))


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """T×H×W×3 uint8 frames resized to size = (height, width) (area averaging when shrinking)."""
    from PIL import Image

    if frames.shape[1:3] == tuple(size):
        return frames
    box = Image.Resampling.BOX
    return np.stack([np.asarray(Image.fromarray(f).resize((size[1], size[0]), box)) for f in frames])


def sample_video(path: str | Path, cfg: VideoConfig) -> SampledVideo:
    """Decode the frames cfg.sampler selects from the file at `path` (PyAV); key clips come resized to
    their smaller size, other selections keep the file's size (the processor resizes them). Times are
    the decoded frames' presentation times; they must agree with the probe's (VideoError if not)."""
    info = probe_cached(path)
    if info.rotation and cfg.rotation == "reject":
        raise VideoError(f"{path}: the display matrix rotates the frames by {info.rotation}°, and params "
                         f"video.rotation is 'reject'")
    clip = Clip(str(path), info.n_frames, info.fps, info.width, info.height, info.times, info.end)
    selection = select(clip, cfg)
    indices = list(selection.indices)
    frames, times = read_frames(path, indices, cfg.rotation)
    if len(frames) != len(indices):
        raise VideoError(f"{path}: decoded {len(frames)} frames, expected {len(indices)}")
    expected = [info.times[i] for i in indices]
    if not np.allclose(times, expected, rtol=0, atol=1e-6):
        raise VideoError(f"{path}: decoded frames show at {list(times)[:4]} s, the packets said "
                         f"{expected[:4]} s (frames out of presentation order?)")
    if selection.size is not None:
        frames = _resize(frames, selection.size)
    return SampledVideo(
        path=str(path), frames=frames, indices=tuple(indices), timestamps=times,
        sampled_fps=len(indices) / info.duration, file_fps=info.fps, n_file_frames=info.n_frames,
        sampler=cfg.sampler, choice=dict(selection.info), duration=info.duration)


# ---- video tokens ----------------------------------------------------------------------------------

def video_tokens(batch, merge_size: int = 2) -> list[int]:
    """Video tokens of each video in a processor batch: t × h × w / merge_size² from video_grid_thw
    (the number of <|video_pad|> tokens the model reads for it)."""
    grid = batch["video_grid_thw"] if "video_grid_thw" in batch else None
    if grid is None:
        return []
    return [int(t * h * w) // merge_size ** 2 for t, h, w in grid.tolist()]


class VideoTokenMeter:
    """Video tokens per processed video, collected while a `count_video_tokens()` block is open."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def summary(self) -> dict[str, float | int | None]:
        """video_tokens_per_item (mean), video_tokens_max and video_token_rows (videos counted);
        None when nothing went through processor_inputs (e.g. a vLLM engine or a fake)."""
        c = self.counts
        return {"video_tokens_per_item": sum(c) / len(c) if c else None,
                "video_tokens_max": max(c) if c else None, "video_token_rows": len(c)}


_METERS: list[VideoTokenMeter] = []


@contextlib.contextmanager
def count_video_tokens():
    """Collect the video tokens of every processor_inputs call made in the block (this process)."""
    meter = VideoTokenMeter()
    _METERS.append(meter)
    try:
        yield meter
    finally:
        _METERS.remove(meter)


def user_text(record: dict) -> str:
    """The user turn's text: question, options and answer-format instruction (videoreasoner/answers/format)."""
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
    batch = processor.apply_chat_template(
        filled, chat_template=chat_template, tokenize=True, return_dict=True, return_tensors="pt",
        add_generation_prompt=add_generation_prompt, return_assistant_tokens_mask=assistant_mask,
        processor_kwargs=kwargs)
    if _METERS:
        counts = video_tokens(batch, getattr(processor.video_processor, "merge_size", 2))
        for meter in _METERS:
            meter.counts.extend(counts)
    return batch
