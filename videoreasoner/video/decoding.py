"""Video I/O with PyAV: H.264 encoding, probing and decoding to uint8 RGB arrays.

Times are presentation times (docs/architecture.md): frame k shows at (pts_k − pts_0) × time_base
seconds, never k / fps, because variable-frame-rate files exist. A file lasts until its last frame
stops showing: its pts plus the interval before it (a constant-rate file: n / fps exactly).
Rotation: a display matrix that turns the coded frames by a multiple of 90° is applied when decoding
(`rotation="apply"`) or the file is rejected (`"reject"`); a mirrored or skewed matrix is an error.
transformers 5.23 cannot load videos by path here (torchcodec does not work on this machine), so every
stage decodes with these functions and passes frames plus their real rate to the processor.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videoreasoner.core.atomic import atomic_path

ROTATION_MODES = ("apply", "reject")
VFR_SLACK = 0.01  # relative spread of frame intervals (beyond one pts tick) still taken as constant rate


class VideoError(ValueError):
    """A video file is missing, unreadable, truncated, has no video stream, or cannot be timed/rotated."""


@dataclass(frozen=True)
class VideoInfo:
    """What probe() reads. fps: mean rate n_frames / duration (the nominal rate of a constant-rate
    file); width, height: display pixels (after rotation); times: presentation time of each frame,
    seconds from the first ((): unknown, taken as k / fps); end: seconds until the last frame stops
    showing (None: n_frames / fps); rotation: degrees the display matrix turns the coded frames
    counter-clockwise (0, 90, 180 or 270)."""

    path: str
    fps: float
    n_frames: int
    width: int
    height: int
    times: tuple[float, ...] = ()
    end: float | None = None
    rotation: int = 0

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (frame k shows during [t_k, t_{k+1}))."""
        if self.end is not None:
            return self.end
        return self.n_frames / self.fps if self.fps else 0.0

    @property
    def vfr(self) -> bool:
        """True when the frame intervals differ by more than one pts tick and VFR_SLACK (variable rate)."""
        gaps = np.diff(self.times) if len(self.times) > 2 else np.zeros(0)
        if not len(gaps):
            return False
        mean = float(gaps.mean())
        return bool(np.abs(gaps - mean).max() > VFR_SLACK * mean + 1e-6)


def encode_mp4(frames: np.ndarray, fps: int, path: str | os.PathLike, crf: int = 18) -> None:
    """Encode T×H×W×3 uint8 RGB frames as H.264 (yuv420p) at a constant `fps`, atomically.

    One encoder thread and fixed x264 options make the output bytes reproducible for the same frames.
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: expected T×H×W×3 frames, got shape {frames.shape}")
    _, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise ValueError(f"{path}: yuv420p needs even frame sizes, got {width}×{height}")
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.thread_count = 1
            stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency",
                              "x264-params": "threads=1:sliced-threads=0"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def _open(path: str | os.PathLike):
    if not Path(path).is_file():
        raise VideoError(f"{path}: video file does not exist")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: cannot open video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


def _nominal_rate(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def rotation_of(frame, path: str | os.PathLike) -> int:
    """Degrees (0, 90, 180, 270) the frame's display matrix turns it counter-clockwise; VideoError for
    a mirrored matrix or an angle that is not a multiple of 90°."""
    matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if matrix is None:
        return 0
    m = np.frombuffer(bytes(matrix), dtype="<i4").astype(np.int64)
    if m[0] * m[4] - m[1] * m[3] < 0:  # negative determinant: the matrix flips the image
        raise VideoError(f"{path}: the display matrix mirrors the frames; only rotations are supported")
    degrees = int(round(frame.rotation)) % 360
    if degrees % 90:
        raise VideoError(f"{path}: the display matrix rotates the frames by {degrees}°; only multiples "
                         f"of 90° are supported")
    return degrees


def _timing(pts: list[int], time_base: Fraction, rate: Fraction | None,
            path: str | os.PathLike) -> tuple[tuple[float, ...], Fraction]:
    """(presentation times in seconds from the first frame, end in seconds) from the frames' pts."""
    if not pts:
        raise VideoError(f"{path}: no decodable frames")
    ticks = sorted(pts)
    for k, (a, b) in enumerate(zip(ticks, ticks[1:])):
        if b <= a:
            raise VideoError(f"{path}: frames {k} and {k + 1} share the presentation time "
                             f"{float((a - ticks[0]) * time_base):g} s")
    rel = [(p - ticks[0]) * time_base for p in ticks]
    if len(rel) > 1:
        last = rel[-1] - rel[-2]
    elif rate:
        last = 1 / rate
    else:
        raise VideoError(f"{path}: one frame and no frame rate: its duration is unknown")
    return tuple(float(t) for t in rel), rel[-1] + last


def _info(path, stream, n_frames: int, pts: list[int], rotation: int) -> VideoInfo:
    if n_frames <= 0:
        raise VideoError(f"{path}: no decodable frames")
    if len(pts) != n_frames:
        raise VideoError(f"{path}: {n_frames - len(pts)} of {n_frames} frames have no presentation time")
    times, end = _timing(pts, Fraction(stream.time_base), _nominal_rate(stream), path)
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(str(path), float(n_frames / end), n_frames, width, height, times, float(end), rotation)


def _first_frame(packet, stream):
    """The frame of the first packet (the decoder is flushed: it may hold frames back), or None when
    that packet does not decode; the damage is then for a full decode (or read_frames) to report,
    since header-only probing promises not to catch it."""
    try:
        return next(iter([*packet.decode(), *stream.codec_context.decode(None)]), None)
    except av.error.FFmpegError:
        return None


def probe(path: str | os.PathLike, decode: bool = True) -> VideoInfo:
    """Frame count, presentation times, display size and rotation. decode=True decodes every frame
    (catches truncation); decode=False reads the packets' pts and decodes only the first packet, for
    the rotation (taken as 0 when that packet does not decode: read_frames then fails loudly)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        pts, first, n_frames = [], None, 0
        try:
            if decode:
                for frame in container.decode(stream):
                    first = frame if first is None else first
                    n_frames += 1
                    if frame.pts is not None:
                        pts.append(frame.pts)
            else:
                for packet in container.demux(stream):
                    if packet.size == 0:  # the demuxer's end-of-stream marker
                        continue
                    if n_frames == 0:
                        first = _first_frame(packet, stream)
                    n_frames += 1
                    if packet.pts is not None:
                        pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: {'decoding' if decode else 'reading'} failed ({exc})") from None
        rotation = rotation_of(first, path) if first is not None else 0
        return _info(path, stream, n_frames, pts, rotation)


@functools.lru_cache(maxsize=65536)
def _probe_version(path: str, mtime_ns: int, size: int) -> VideoInfo:
    return probe(path, decode=False)


def probe_cached(path: str | os.PathLike) -> VideoInfo:
    """probe(path, decode=False), cached per file version (path, mtime, size): ingest probes a video once
    per record that names it, and training samples the same files every epoch."""
    try:
        stat = os.stat(path)
    except OSError:
        raise VideoError(f"{path}: video file does not exist") from None
    return _probe_version(str(path), stat.st_mtime_ns, stat.st_size)


def read_frames(path: str | os.PathLike, indices: list[int] | None = None,
                rotation: str = "apply") -> tuple[np.ndarray, tuple[float, ...]]:
    """Frames as a T×H×W×3 uint8 RGB array in display orientation (all, or those at `indices`,
    counted in presentation order) and their presentation times in seconds from the first frame.
    rotation: "apply" turns rotated frames upright; "reject" raises VideoError for a rotated file."""
    if rotation not in ROTATION_MODES:
        raise ValueError(f"rotation must be one of {ROTATION_MODES}, got {rotation!r}")
    wanted = None if indices is None else set(indices)
    frames, times, turn, t0 = [], [], 0, None
    with _open(path) as container:
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base)
        try:
            for k, frame in enumerate(container.decode(stream)):
                if frame.pts is None:
                    raise VideoError(f"{path}: frame {k} has no presentation time")
                if k == 0:
                    t0, turn = frame.pts, rotation_of(frame, path)
                    if turn and rotation == "reject":
                        raise VideoError(f"{path}: the display matrix rotates the frames by {turn}°, and "
                                         f"params rotation is 'reject'")
                if wanted is None or k in wanted:
                    frames.append(np.rot90(frame.to_ndarray(format="rgb24"), turn // 90))
                    times.append(float((frame.pts - t0) * time_base))
                if wanted is not None and k >= max(wanted):
                    break
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed at frame {len(frames)} ({exc})") from None
    if not frames:
        raise VideoError(f"{path}: no decodable frames")
    if indices is not None and len(frames) != len(wanted):
        raise VideoError(f"{path}: asked for frames up to {max(wanted)}, file has fewer")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise VideoError(f"{path}: decoded frames are not in increasing presentation time")
    return np.ascontiguousarray(np.stack(frames)), tuple(times)


def decode_frames(path: str | os.PathLike, indices: list[int] | None = None) -> tuple[np.ndarray, float]:
    """Frames (as read_frames, rotation applied) plus the container's nominal frame rate. The rate is
    only right for constant-rate files: times that reach a model, reward or metric come from
    read_frames or sample_video, never from k / this rate."""
    frames, _ = read_frames(path, indices)
    with _open(path) as container:
        rate = _nominal_rate(container.streams.video[0])
    return frames, float(rate) if rate else 0.0
