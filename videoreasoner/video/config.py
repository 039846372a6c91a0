"""Params `video` as a typed setting: one for training and evaluation, recorded with every metric.

The samplers (videoreasoner/video/samplers.py) and the decoding path (videoreasoner/video/inputs.py) both
read it; it imports neither, so the imports run one way: config <- samplers <- inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from videoreasoner.core.params import read_section
from videoreasoner.video.decoding import ROTATION_MODES

# The frame samplers by name; videoreasoner/video/samplers.py SAMPLERS implements exactly these.
SAMPLER_NAMES = ("uniform", "fps", "keyframes", "keyclips")


@dataclass(frozen=True)
class VideoConfig:
    """Params `video`: one setting for training and evaluation (recorded with every metric).

    fps: target sampling rate (frames per second of video time); the frame count is clamped to
    [min_frames, max_frames] and rounded down to a multiple of temporal_patch_size (2 for Qwen2.5-VL,
    so the processor never pads by repeating a frame). max_pixels / min_pixels: per-frame pixel budget
    handed to the processor (112×112 = 12544 keeps the synthetic frames at their size).
    sampler: a name in SAMPLER_NAMES. change_share: share of the frames (keyframes) or
    clips (keyclips) placed at the largest inter-frame changes, in [0, 1]; score_fps: rate (frames per
    second of video time) at which changes are scored, None for every frame; clip_frames: frames per
    key clip, a multiple of temporal_patch_size; keyclip_factor: key clips take this many times the
    frames at 1/this of the tokens per frame (same video tokens as uniform). rotation: a file whose
    display matrix turns its frames is turned upright ("apply") or rejected ("reject").
    Defaults equal params.yaml (tests/test_params_defaults.py).
    """

    PARAMS_SECTION: ClassVar[str] = "video"

    fps: float = 0.5
    min_frames: int = 4
    max_frames: int = 4
    max_pixels: int = 112 * 112
    min_pixels: int = 28 * 28 * 4
    sampler: str = "uniform"
    temporal_patch_size: int = 2
    change_share: float = 0.5
    score_fps: float | None = 4.0
    clip_frames: int = 4
    keyclip_factor: int = 4
    rotation: str = "apply"

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "VideoConfig":
        cfg = read_section(params, cls)
        if cfg.sampler not in SAMPLER_NAMES:
            raise ValueError(f"params video.sampler: unknown sampler {cfg.sampler!r} (known: {list(SAMPLER_NAMES)})")
        if not 0.0 <= cfg.change_share <= 1.0:
            raise ValueError(f"params video.change_share: must lie in [0, 1], got {cfg.change_share!r}")
        if cfg.score_fps is not None and not cfg.score_fps > 0:
            raise ValueError(f"params video.score_fps: must be > 0 or null, got {cfg.score_fps!r}")
        if not isinstance(cfg.clip_frames, int) or cfg.clip_frames < 1 or cfg.clip_frames % cfg.temporal_patch_size:
            raise ValueError(f"params video.clip_frames: must be a positive multiple of temporal_patch_size "
                             f"({cfg.temporal_patch_size}), got {cfg.clip_frames!r}")
        if not isinstance(cfg.keyclip_factor, int) or cfg.keyclip_factor < 1:
            raise ValueError(f"params video.keyclip_factor: must be an integer >= 1, got {cfg.keyclip_factor!r}")
        if not 0 < cfg.min_frames <= cfg.max_frames or cfg.fps <= 0:
            raise ValueError("params video: need fps > 0 and 0 < min_frames <= max_frames")
        if cfg.rotation not in ROTATION_MODES:
            raise ValueError(f"params video.rotation: must be one of {list(ROTATION_MODES)}, got {cfg.rotation!r}")
        if cfg.min_pixels > cfg.max_pixels:
            raise ValueError("params video: min_pixels must not exceed max_pixels")
        return cfg

    def processor_size(self) -> dict[str, int]:
        """The processor's `size` (pixels per frame): shortest_edge = min, longest_edge = max."""
        return {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
