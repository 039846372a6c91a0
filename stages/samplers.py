"""Frame selection under a token budget: which frames of a file the model sees (params `video.sampler`).

A sampler maps what is known about a file (`Clip`: frame count, fps, size, path) and the VideoConfig to
a `Selection`: strictly increasing file-frame indices (frame k shows at k / fps seconds) and the size
the frames are resized to (None: the processor's size for `max_pixels`). stages/video_inputs.py decodes
the selection; every stage (sft, rl, tts, evaluate) goes through it, so all of them select alike.

The budget is the uniform sampler's: N = num_frames(...) frames at the processor size of `max_pixels`,
i.e. N / temporal_patch_size × (h / 28) × (w / 28) video tokens for Qwen2.5-VL (14-px patches merged
2 × 2). `keyframes` keeps N frames at that size; `keyclips` takes `keyclip_factor` × N frames at
1 / keyclip_factor of the merged-token grid, so the token count is the same (tests/test_samplers.py
checks it through the real processor) when the file has at least keyclip_factor × N frames; a shorter
file is taken whole at the reduced size, below the budget. `fps` never exceeds the budget and meets it
when its stride divides the file.

- uniform: N frames spread evenly (frame floor(k × n / N)); N = duration × fps clamped to
  [min_frames, max_frames], a multiple of temporal_patch_size.
- fps: a fixed rate: every s-th file frame, s = round(file_fps / fps) (an exact stride, so the spacing
  is exactly regular); when that gives more than max_frames the stride grows to ceil(n / max_frames).
  No min_frames: short clips cost fewer tokens.
- keyframes: scene-change keyframes (in the spirit of KFFocus): frames are scored by their mean
  absolute difference to the previous scored frame at about 32 px (the decoded YUV planes
  block-averaged: no colour conversion, well under 1 ms a frame); round(change_share × N) slots go to
  the largest changes (the frame right after a change; neighbours of a picked frame suppressed), the
  rest fill the largest gaps left (frame 0 first, then farthest point), so quiet stretches are still
  covered at a low rate: the "slow" pathway of Keye-VL's slow-fast split. Its other half, fewer
  tokens for frames like their neighbour, would need two frame sizes in one video, which Qwen2.5-VL's
  single video grid does not allow; key clips trade resolution for frames per video instead.
- keyclips: key clips in the spirit of F2C: segments of `clip_frames` consecutive frames (whole
  temporal patches, so each patch merges neighbouring frames) centred on the largest changes, so each
  picked change is bracketed by the frames just before and after it; the rest fill the gaps as above.
  The frames are downscaled so that frames × merged tokens per frame equals the uniform budget.

Time positions. Qwen2.5-VL takes one `second_per_grid_ts` per video (temporal_patch_size / fps): the
temporal position of patch j is j × second_per_grid_ts. Selections other than uniform/fps are
irregular, so the fps passed is the mean rate (frames kept / duration): the patches span the clip's
true duration, each at its mean position, not its exact one. The exact times are kept in
SampledVideo.timestamps (seconds, frame k at k / file_fps), which the STVG rewards and votes use and
evaluate writes to predictions/<model>.frames.jsonl. A prompt listing them (as Qwen3-VL's per-frame
time text does) would carry them to the model; the prompt is stages/answer_format's and unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # video_inputs imports this module
    from stages.video_inputs import VideoConfig

MERGED_PX = 28      # Qwen2.5-VL: 14-px patches merged 2 × 2 -> one video token per 28 × 28 pixels
MAX_ASPECT_ERR = math.log(1.5)  # key clips: a smaller frame may change the aspect ratio by at most 1.5×
SCORE_SIDE = 32     # width (pixels) at which frames are compared to score changes


@dataclass(frozen=True)
class Clip:
    """What a sampler knows about a file: frame count, fps, size in pixels, path."""

    path: str
    n_frames: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class Selection:
    """File-frame indices (strictly increasing); size: (height, width) pixels to resize the frames to,
    None for the processor size of max_pixels; info: what was chosen (JSON-ready)."""

    indices: tuple[int, ...]
    size: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ---- budget -----------------------------------------------------------------------------------------

def num_frames(n_file_frames: int, file_fps: float, cfg: "VideoConfig") -> int:
    """How many frames to keep: duration × cfg.fps, clamped, a multiple of the temporal patch."""
    want = round(n_file_frames / file_fps * cfg.fps)
    want = min(max(want, cfg.min_frames), cfg.max_frames, n_file_frames)
    step = cfg.temporal_patch_size
    return max(step, want // step * step) if n_file_frames >= step else n_file_frames


def processor_size(height: int, width: int, cfg: "VideoConfig") -> tuple[int, int]:
    """(height, width) the Qwen2-VL processor resizes a frame to (its smart_resize: multiples of 28,
    pixels within [min_pixels, max_pixels], aspect kept as far as possible)."""
    f = MERGED_PX
    h, w = max(f, round(height / f) * f), max(f, round(width / f) * f)
    if h * w > cfg.max_pixels:
        beta = math.sqrt(height * width / cfg.max_pixels)
        h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
    elif h * w < cfg.min_pixels:
        beta = math.sqrt(cfg.min_pixels / (height * width))
        h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
    return h, w


def video_tokens_for(n_frames: int, height: int, width: int, cfg: "VideoConfig") -> int:
    """Video tokens of n_frames frames of height × width pixels after the processor's resize."""
    h, w = processor_size(height, width, cfg)
    t = math.ceil(n_frames / cfg.temporal_patch_size)
    return t * (h // MERGED_PX) * (w // MERGED_PX)


def reduced_size(height: int, width: int, factor: int, cfg: "VideoConfig") -> tuple[int, int] | None:
    """A frame size (multiples of 28, >= min_pixels) with exactly 1/factor of the merged tokens of the
    processor size for (height, width), aspect as close as possible and within 1.5× of it; None if
    there is none."""
    h, w = processor_size(height, width, cfg)
    a, b = h // MERGED_PX, w // MERGED_PX
    if (a * b) % factor:
        return None
    cells, aspect, best = a * b // factor, a / b, None
    for a2 in range(1, cells + 1):
        if cells % a2:
            continue
        b2 = cells // a2
        if a2 * b2 * MERGED_PX ** 2 < cfg.min_pixels:
            continue
        err = abs(math.log(a2 / b2 / aspect))
        if err > MAX_ASPECT_ERR:
            continue
        if best is None or err < best[0] - 1e-12:
            best = (err, (a2 * MERGED_PX, b2 * MERGED_PX))
    return None if best is None else best[1]


# ---- change signal ----------------------------------------------------------------------------------

def _small(frame) -> np.ndarray:
    """A cheap low-resolution view of a decoded frame: its YUV 4:2:0 planes as PyAV lays them out
    (luma rows, then chroma rows), averaged over b × b blocks so that the width is about SCORE_SIDE."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    planes = frame.to_ndarray().astype(np.float32)
    b = max(1, planes.shape[1] // SCORE_SIDE)
    rows, cols = planes.shape[0] // b * b, planes.shape[1] // b * b
    return planes[:rows, :cols].reshape(rows // b, b, cols // b, b).mean(axis=(1, 3))


@lru_cache(maxsize=64)
def _change_signal(path: str, stride: int, mtime_ns: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    import av

    from stages.video_io import VideoError

    indices, scores, prev = [], [], None
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if k % stride:
                    continue
                small = _small(frame)
                indices.append(k)
                scores.append(math.inf if prev is None else float(np.abs(small - prev).mean()))
                prev = small
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed while scoring changes ({exc})") from None
    return tuple(indices), tuple(scores)


def change_signal(clip: Clip, cfg: "VideoConfig") -> tuple[list[int], list[float]]:
    """(scored file-frame indices, change scores): every s-th frame, s = max(1, round(file_fps /
    score_fps)), scored by the mean absolute difference (0–255) of its YUV planes to the previous
    scored frame's, both at about 32 px wide; the first frame scores +inf. Cached per (file, stride)."""
    import os

    stride = 1 if cfg.score_fps is None else max(1, round(clip.fps / cfg.score_fps))
    indices, scores = _change_signal(str(clip.path), stride, os.stat(clip.path).st_mtime_ns)
    return list(indices), list(scores)


# ---- placement --------------------------------------------------------------------------------------

def _gaps(n_file: int, length: int, chosen: list[tuple[int, int]]) -> np.ndarray:
    """For every start s of a segment [s, s+length) in [0, n_file): frames between it and the nearest
    chosen segment (negative: they overlap; +inf when nothing is chosen)."""
    starts = np.arange(max(0, n_file - length + 1))
    gaps = np.full(len(starts), np.inf)
    for s, n in chosen:
        gaps = np.minimum(gaps, np.maximum(s - (starts + length), starts - (s + n)))
    return gaps


def place(n_file: int, length: int, total: int, changes: list[tuple[int, float]], n_change: int,
          step: int = 1) -> tuple[list[tuple[int, int]], list[int]]:
    """Non-overlapping segments of `length` frames in [0, n_file), `total` frames in all: first up to
    `n_change` centred on the largest changes (a change at frame b: the segment starts at
    b - length // 2, so frames b-1 and b are both kept when length >= 2), skipping any that overlaps
    or touches one already placed; then the rest: at frame 0 if it is free, then each where it is
    farthest from every placed segment. When no gap holds a whole segment any more, pieces of `step`
    frames (then single frames) fill the remaining gaps, so exactly min(total, n_file) frames are placed.
    Returns (segments as (start, length) sorted by start, the change frames used)."""
    total = min(total, n_file)
    length = min(length, total)
    chosen: list[tuple[int, int]] = []
    used: list[int] = []
    for b, _ in sorted(changes, key=lambda c: (-c[1], c[0])):
        if len(used) >= n_change or total - len(used) * length < length:
            break
        start = min(max(b - length // 2, 0), n_file - length)
        if _gaps(n_file, length, chosen)[start] >= 1:
            chosen.append((start, length))
            used.append(b)
    placed = len(used) * length
    for piece in sorted({length, step, 1}, reverse=True):
        while total - placed >= piece:
            gaps = _gaps(n_file, piece, chosen)
            # frame 0 while it is free, then the earliest of the farthest starts
            best = 0 if gaps[0] >= 0 else int(np.argmax(gaps))
            if gaps[best] < 0:
                break
            chosen.append((best, piece))
            placed += piece
    return sorted(chosen), sorted(used)


# ---- samplers ---------------------------------------------------------------------------------------

def uniform(clip: Clip, cfg: "VideoConfig") -> Selection:
    """Frame k of n kept is the file frame floor(k × n_file / n) (the first frame included)."""
    n = num_frames(clip.n_frames, clip.fps, cfg)
    return Selection(tuple(math.floor(k * clip.n_frames / n) for k in range(n)))


def fixed_fps(clip: Clip, cfg: "VideoConfig") -> Selection:
    """Every s-th frame from frame 0 (s = round(file_fps / fps), at least ceil(n / max_frames))."""
    n_file, step = clip.n_frames, cfg.temporal_patch_size
    stride = max(1, round(clip.fps / cfg.fps), math.ceil(n_file / cfg.max_frames))
    count = math.ceil(n_file / stride)
    count = max(step, count // step * step) if n_file >= step * stride else min(count, n_file)
    return Selection(tuple(k * stride for k in range(count)), info={"stride": stride})


def _changes(clip: Clip, cfg: "VideoConfig") -> list[tuple[int, float]]:
    indices, scores = change_signal(clip, cfg)
    return [(i, s) for i, s in zip(indices, scores) if math.isfinite(s)]


def keyframes(clip: Clip, cfg: "VideoConfig") -> Selection:
    """N frames: round(change_share × N) right after the largest changes, the rest filling the gaps."""
    n = num_frames(clip.n_frames, clip.fps, cfg)
    n_change = min(round(cfg.change_share * n), n - 1)
    segments, used = place(clip.n_frames, 1, n, _changes(clip, cfg), n_change)
    return Selection(tuple(s for s, _ in segments), info={"change_frames": used})


def keyclips(clip: Clip, cfg: "VideoConfig") -> Selection:
    """Key clips: factor × N frames in clips of clip_frames around the largest changes, downscaled to
    1/factor of the tokens per frame. factor: keyclip_factor, or on a file of fewer than
    keyclip_factor × N frames the least factor that still takes every frame; when no frame size has
    exactly 1/factor of the tokens within 1.5× of the aspect ratio, the next factor that has one
    (factor 1 keeps the processor size). A file shorter than factor × N frames is taken whole, at
    fewer tokens than the budget."""
    n, step = num_frames(clip.n_frames, clip.fps, cfg), cfg.temporal_patch_size
    need = min(max(1, math.ceil(clip.n_frames / n)), cfg.keyclip_factor)
    factor, size = 1, None
    for f in [*range(need, cfg.keyclip_factor + 1), *range(need - 1, 1, -1)]:
        if (fitted := reduced_size(clip.height, clip.width, f, cfg)) is not None:
            factor, size = f, fitted
            break
    available = clip.n_frames // step * step if clip.n_frames >= step else clip.n_frames
    total = min(factor * n, available)
    length = min(cfg.clip_frames, total)
    n_change = min(round(cfg.change_share * total / length), total // length - 1)
    segments, used = place(clip.n_frames, length, total, _changes(clip, cfg), n_change,
                           step=cfg.temporal_patch_size)
    indices = tuple(k for s, m in segments for k in range(s, s + m))
    return Selection(indices, size=size, info={"change_frames": used, "factor": factor,
                                               "clips": [[s, m] for s, m in segments]})


Sampler = Callable[[Clip, "VideoConfig"], Selection]
SAMPLERS: dict[str, Sampler] = {"uniform": uniform, "fps": fixed_fps, "keyframes": keyframes,
                                "keyclips": keyclips}


def select(clip: Clip, cfg: "VideoConfig") -> Selection:
    """The selection of params `video.sampler` for `clip` (indices checked: increasing, in the file)."""
    selection = SAMPLERS[cfg.sampler](clip, cfg)
    idx = selection.indices
    if not idx or any(b <= a for a, b in zip(idx, idx[1:])) or idx[0] < 0 or idx[-1] >= clip.n_frames:
        raise RuntimeError(f"{clip.path}: sampler {cfg.sampler} chose invalid frames {list(idx)[:8]}…")
    return selection
