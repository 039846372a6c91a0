"""Frame selection under a token budget: which frames of a file the model sees (params `video.sampler`).

A sampler maps what is known about a file (`Clip`: frame count, fps, size, path, the frames'
presentation times) and the VideoConfig (videoreasoner/video/config.py) to a `Selection`: strictly increasing file-frame indices
(counted in presentation order) and the size the frames are resized to (None: the processor's size for
`max_pixels`). videoreasoner/video/inputs.py decodes the selection; every stage (sft, rl, tts, evaluate) and
the registered model go through it, so all of them select alike.

The budget is the uniform sampler's: N = num_frames(...) frames at the processor size of `max_pixels`,
i.e. N / temporal_patch_size × (h / 28) × (w / 28) video tokens for Qwen2.5-VL (14-px patches merged
2 × 2). `keyframes` keeps N frames at that size; `keyclips` takes `keyclip_factor` × N frames at
1 / keyclip_factor of the merged-token grid, so the token count is the same (tests/test_samplers.py
checks it through the real processor) when the file has at least keyclip_factor × N frames; a shorter
file is taken whole at the reduced size, below the budget. `fps` never exceeds the budget and meets it
when its stride divides the file.

Coverage: every sampler reaches the end of the clip. Starting at frame 0 with a stride of n / N would
leave the last stride unseen (4 frames of 5.28 s at 0, 1.32, 2.64, 3.96 s), so an event there could
never be grounded; `check_coverage` makes that loud for every selection.

- uniform: the centres of N equal segments of the clip's duration D: the frame on screen at
  (k + ½) × D / N (constant rate: file frame floor((2k + 1) × n / 2N)); N = duration × fps clamped to
  [min_frames, max_frames], a multiple of temporal_patch_size. A variable-rate file is divided by
  time, not by frame count.
- fps: a fixed rate: every s-th file frame, s = round(file_fps / fps) (an exact stride, so the spacing
  is exactly regular), the run centred in the file; when that gives more than max_frames the stride
  grows to ceil(n / max_frames). No min_frames: short clips cost fewer tokens. On a variable-rate
  file the stride is in frames at the mean rate (the times kept are still the true ones).
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
irregular (and so is any selection from a variable-rate file), so the fps passed is the mean rate
(frames kept / duration): the patches span the clip's true duration, each at its mean position, not
its exact one. The exact times are kept in SampledVideo.timestamps (seconds: the decoded frames'
presentation times), which the STVG rewards and votes use and
evaluate writes to predictions/<model>.frames.jsonl. A prompt listing them (as Qwen3-VL's per-frame
time text does) would carry them to the model; the prompt is videoreasoner/answers/format's and unchanged.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import av
import numpy as np

from videoreasoner.video.config import SAMPLER_NAMES, VideoConfig
from videoreasoner.video.decoding import VideoError

logger = logging.getLogger(__name__)
MERGED_PX = 28      # Qwen2.5-VL: 14-px patches merged 2 × 2 -> one video token per 28 × 28 pixels
MAX_ASPECT_ERR = math.log(1.5)  # key clips: a smaller frame may change the aspect ratio by at most 1.5×
SCORE_SIDE = 32     # width (pixels) at which frames are compared to score changes


@dataclass(frozen=True)
class Clip:
    """What a sampler knows about a file: frame count, fps (the mean rate for a variable-rate file),
    display size in pixels, path; times: each frame's presentation time in seconds from the first
    (empty: constant rate, frame k at k / fps); end: seconds until the last frame stops showing (None:
    n_frames / fps)."""

    path: str
    n_frames: int
    fps: float
    width: int
    height: int
    times: tuple[float, ...] = ()
    end: float | None = None

    @property
    def duration(self) -> float:
        """Seconds the clip lasts."""
        return self.end if self.end is not None else self.n_frames / self.fps

    def frame_times(self) -> list[float]:
        """Presentation time (seconds) of every file frame."""
        return list(self.times) if self.times else [k / self.fps for k in range(self.n_frames)]


@dataclass(frozen=True)
class Selection:
    """File-frame indices (strictly increasing); size: (height, width) pixels to resize the frames to,
    None for the processor size of max_pixels; info: what was chosen (JSON-ready)."""

    indices: tuple[int, ...]
    size: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ---- budget -----------------------------------------------------------------------------------------

def num_frames(n_file_frames: int, file_fps: float, cfg: VideoConfig) -> int:
    """How many frames to keep: duration × cfg.fps, clamped, a multiple of the temporal patch."""
    want = round(n_file_frames / file_fps * cfg.fps)
    want = min(max(want, cfg.min_frames), cfg.max_frames, n_file_frames)
    step = cfg.temporal_patch_size
    return max(step, want // step * step) if n_file_frames >= step else n_file_frames


def processor_size(height: int, width: int, cfg: VideoConfig) -> tuple[int, int]:
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


def video_tokens_for(n_frames: int, height: int, width: int, cfg: VideoConfig) -> int:
    """Video tokens of n_frames frames of height × width pixels after the processor's resize."""
    h, w = processor_size(height, width, cfg)
    t = math.ceil(n_frames / cfg.temporal_patch_size)
    return t * (h // MERGED_PX) * (w // MERGED_PX)


def reduced_size(height: int, width: int, factor: int, cfg: VideoConfig) -> tuple[int, int] | None:
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


def change_signal(clip: Clip, cfg: VideoConfig) -> tuple[list[int], list[float]]:
    """(scored file-frame indices, change scores): every s-th frame, s = max(1, round(file_fps /
    score_fps)), scored by the mean absolute difference (0–255) of its YUV planes to the previous
    scored frame's, both at about 32 px wide; the first frame scores +inf. Cached per (file, stride)."""
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

def centre_indices(n_file: int, n: int, times: tuple[float, ...] = (), end: float | None = None) -> list[int]:
    """The file frames on screen at the centres of n equal segments of the clip: (k + ½) × D / n
    seconds. Without times (constant rate) exactly floor((2k + 1) × n_file / 2n); with times the
    segments divide the duration `end`, and the frame shown is the last with t <= the centre. n <=
    n_file gives n distinct frames at constant rate; at variable rate a repeated frame moves on to the
    next free one so that the count stays n."""
    if not times:
        return [(2 * k + 1) * n_file // (2 * n) for k in range(n)]
    duration = end if end is not None else times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1.0)
    out: list[int] = []
    for k in range(n):
        i = max(0, bisect.bisect_right(times, (2 * k + 1) * duration / (2 * n) + 1e-9) - 1)
        i = max(i, out[-1] + 1) if out else i
        out.append(min(i, n_file - (n - k)))  # leave room for the frames still to place
    return out


def uniform(clip: Clip, cfg: VideoConfig) -> Selection:
    """N frames at the centres of N equal segments of the clip (see centre_indices)."""
    n = num_frames(clip.n_frames, clip.fps, cfg)
    return Selection(tuple(centre_indices(clip.n_frames, n, clip.times, clip.end)))


def fixed_fps(clip: Clip, cfg: VideoConfig) -> Selection:
    """Every s-th frame from frame 0 (s = round(file_fps / fps), at least ceil(n / max_frames))."""
    n_file, step = clip.n_frames, cfg.temporal_patch_size
    stride = max(1, round(clip.fps / cfg.fps), math.ceil(n_file / cfg.max_frames))
    count = math.ceil(n_file / stride)
    count = max(step, count // step * step) if n_file >= step * stride else min(count, n_file)
    # centre the run: what is left over splits between the start and the end of the clip
    offset = max(0, (n_file - 1 - (count - 1) * stride) // 2)
    return Selection(tuple(offset + k * stride for k in range(count)), info={"stride": stride, "offset": offset})


def _changes(clip: Clip, cfg: VideoConfig) -> list[tuple[int, float]]:
    indices, scores = change_signal(clip, cfg)
    return [(i, s) for i, s in zip(indices, scores) if math.isfinite(s)]


def keyframes(clip: Clip, cfg: VideoConfig) -> Selection:
    """N frames: round(change_share × N) right after the largest changes, the rest filling the gaps."""
    n = num_frames(clip.n_frames, clip.fps, cfg)
    n_change = min(round(cfg.change_share * n), n - 1)
    segments, used = place(clip.n_frames, 1, n, _changes(clip, cfg), n_change)
    return Selection(tuple(s for s, _ in segments), info={"change_frames": used})


def keyclips(clip: Clip, cfg: VideoConfig) -> Selection:
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


Sampler = Callable[[Clip, VideoConfig], Selection]
SAMPLERS: dict[str, Sampler] = {"uniform": uniform, "fps": fixed_fps, "keyframes": keyframes,
                                "keyclips": keyclips}
if tuple(SAMPLERS) != SAMPLER_NAMES:  # params video.sampler is checked against the names alone
    raise ImportError(f"samplers {list(SAMPLERS)} differ from videoreasoner/video/config.py SAMPLER_NAMES")


# How far the kept frames must reach the ends, as a share of their largest gap: the unseen stretch
# before the first and after the last frame may be at most share × that gap plus one file frame.
# uniform promises half (segment centres); fps a whole stride (it keeps an exact stride); the
# change-driven samplers may spend every frame on changes, so they are held to a whole gap and warned.
COVERAGE = {"uniform": 0.5, "fps": 1.0}
_warned: set[str] = set()


def coverage_gaps(clip: Clip, indices: tuple[int, ...]) -> tuple[float, float, float]:
    """(start gap, end gap, largest gap between kept frames) in seconds: the first kept frame's time,
    the duration minus the last kept frame's time, and the largest step between kept frames (the
    duration when one frame is kept)."""
    times = clip.frame_times()
    kept = [times[i] for i in indices]
    inner = max((b - a for a, b in zip(kept, kept[1:])), default=clip.duration)
    return kept[0], clip.duration - kept[-1], inner


def check_coverage(clip: Clip, selection: Selection, sampler: str) -> None:
    """The kept frames must reach both ends of the clip (see COVERAGE). A sampler in COVERAGE that
    fails raises RuntimeError; any other is logged once per sampler name."""
    start, end, inner = coverage_gaps(clip, selection.indices)
    times = clip.frame_times()
    slack = max((b - a for a, b in zip(times, times[1:])), default=0.0) + 1e-6
    if max(start, end) <= COVERAGE.get(sampler, 1.0) * inner + slack:
        return
    message = (f"{clip.path}: sampler {sampler} leaves {start:.3g} s unseen at the start and {end:.3g} s at "
               f"the end of a {clip.duration:.3g}-s clip, with {inner:.3g} s between its frames")
    if sampler in COVERAGE:
        raise RuntimeError(message)
    if sampler not in _warned:
        _warned.add(sampler)
        logger.warning("%s (logged once)", message)


def select(clip: Clip, cfg: VideoConfig) -> Selection:
    """The selection of params `video.sampler` for `clip` (indices checked: increasing, in the file,
    covering the clip; see check_coverage)."""
    selection = SAMPLERS[cfg.sampler](clip, cfg)
    idx = selection.indices
    if not idx or any(b <= a for a, b in zip(idx, idx[1:])) or idx[0] < 0 or idx[-1] >= clip.n_frames:
        raise RuntimeError(f"{clip.path}: sampler {cfg.sampler} chose invalid frames {list(idx)[:8]}…")
    check_coverage(clip, selection, cfg.sampler)
    return selection
