"""Rasterise a scene into RGB frames. A pixel belongs to a shape when its centre lies inside it."""
from __future__ import annotations

import math

import numpy as np

from videoreasoner.data.world.config import BACKGROUND, DISTRACTOR_GREY, PALETTE
from videoreasoner.data.world.scene import Scene


def _inside(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixel-centre offsets (dx, dy) from the shape's centre -> inside mask; bounding box ±r."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "triangle":  # apex up, base on the box's bottom edge
        return (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def paint(frame: np.ndarray, shape: str, cx: float, cy: float, r: float, colour) -> None:
    """Paint a shape whose bounding box is [cx - r, cx + r] × [cy - r, cy + r] pixels, in place.
    Only the window around the shape is evaluated (rendering is the generator's hot path)."""
    height, width = frame.shape[:2]
    x0, x1 = max(0, math.floor(cx - r - 1)), min(width, math.ceil(cx + r + 1))
    y0, y1 = max(0, math.floor(cy - r - 1)), min(height, math.ceil(cy + r + 1))
    if x0 >= x1 or y0 >= y1:
        return
    dy, dx = np.ogrid[y0:y1, x0:x1]
    mask = _inside(shape, dx + 0.5 - cx, dy + 0.5 - cy, r)
    frame[y0:y1, x0:x1][mask] = colour


def render(scene: Scene) -> np.ndarray:
    """T×H×W×3 uint8 frames: background, then distractors, then objects in list order (later on top)."""
    frames = np.empty((scene.n_frames, scene.height, scene.width, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    for k in range(scene.n_frames):
        t = scene.frame_time(k)
        for dot in scene.distractors:
            paint(frames[k], "circle", *dot.centre_at(t), dot.radius, DISTRACTOR_GREY)
        for obj in scene.objects:
            if obj.visible_at(t):
                paint(frames[k], obj.shape, *obj.centre_at(t), obj.radius, PALETTE[obj.colour])
    return frames
