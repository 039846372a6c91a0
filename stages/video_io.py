"""Video I/O with PyAV: H.264 encoding, probing and decoding to uint8 RGB arrays.

Timestamps are seconds from the first frame: frame k of a constant-rate file shows at k / fps.
transformers 5.23 cannot load videos by path here (torchcodec does not work on this machine), so every
stage decodes with these functions and passes frames plus their real fps to the processor.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stages.atomic import atomic_path


class VideoError(ValueError):
    """A video file is missing, unreadable, truncated or has no video stream."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: n_frames / fps (frame k spans [k/fps, (k+1)/fps))."""
        return self.n_frames / self.fps if self.fps else 0.0


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


def probe(path: str | os.PathLike, decode: bool = True) -> VideoInfo:
    """Frame rate, size and frame count; with `decode=True` every frame is decoded (catches truncation)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        width, height = stream.codec_context.width, stream.codec_context.height
        if decode:
            try:
                n_frames = sum(1 for _ in container.decode(stream))
            except av.error.FFmpegError as exc:
                raise VideoError(f"{path}: decoding failed ({exc})") from None
        else:
            n_frames = stream.frames
    if n_frames <= 0 or fps <= 0:
        raise VideoError(f"{path}: no decodable frames")
    return VideoInfo(str(path), fps, n_frames, width, height)


def decode_frames(path: str | os.PathLike, indices: list[int] | None = None) -> tuple[np.ndarray, float]:
    """Decode frames as a T×H×W×3 uint8 RGB array (all, or those at `indices`), plus the file's fps."""
    wanted = None if indices is None else set(indices)
    frames = []
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate)
        try:
            for k, frame in enumerate(container.decode(stream)):
                if wanted is None or k in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if wanted is not None and k >= max(wanted):
                    break
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed at frame {len(frames)} ({exc})") from None
    if not frames:
        raise VideoError(f"{path}: no decodable frames")
    if indices is not None and len(frames) != len(wanted):
        raise VideoError(f"{path}: asked for frames up to {max(wanted)}, file has fewer")
    return np.stack(frames), fps
