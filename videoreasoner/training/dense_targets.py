"""Dense supervision for pretraining the tiny base: what each merged video token shows, exactly.

The synthetic world knows every pixel: which coloured shape covers it at any time. For each merged
token of Qwen2.5-VL's vision tower (spatial_merge × spatial_merge patches of patch_size pixels, over
temporal_patch consecutive sampled frames) the target is the share of its pixels covered by each colour
(or by nothing) and by each shape (or by nothing). A small linear head on the tower's output learns to
read both, so colour and shape reach the language model's input as features from the first steps,
in place of CLIP-style contrastive pretraining (which needs captions at a scale we do not have).

Conventions: token order is Qwen2.5-VL's (temporal patch, then merged rows, then merged columns: the
tower's `pooler_output` after its window order is undone); a frame at time t shows an object iff
enter <= t < exit (videoreasoner/data/world/scene.py); times are the decoded frames' presentation
times in seconds; cell edges are proportional, so a frame resized by the processor maps onto the
original pixels. Grey distractor dots count as background: no question is ever about them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from videoreasoner.data.world.config import PALETTE, SHAPES
from videoreasoner.data.world.render import paint
from videoreasoner.data.world.scene import Scene

COLOUR_CLASSES = ("none", *PALETTE)   # fixed order: a world with fewer colours leaves classes unused
SHAPE_CLASSES = ("none", *SHAPES)


def label_maps(scene: Scene, t: float) -> tuple[np.ndarray, np.ndarray]:
    """H×W class indices (COLOUR_CLASSES, SHAPE_CLASSES) of the frame at time t (seconds), objects
    painted in the renderer's order (later on top), with the renderer's own pixel test."""
    colour = np.zeros((scene.height, scene.width), dtype=np.int64)
    shape = np.zeros_like(colour)
    for obj in scene.objects:
        if obj.visible_at(t):
            cx, cy = obj.centre_at(t)
            paint(colour, obj.shape, cx, cy, obj.radius, COLOUR_CLASSES.index(obj.colour))
            paint(shape, obj.shape, cx, cy, obj.radius, SHAPE_CLASSES.index(obj.shape))
    return colour, shape


def _cell_shares(maps: np.ndarray, rows: int, cols: int, n_classes: int) -> np.ndarray:
    """F×H×W class maps -> (rows·cols)×n_classes pixel shares per cell, cells in raster order."""
    _, height, width = maps.shape
    r_edges = np.rint(np.linspace(0, height, rows + 1)).astype(int)
    c_edges = np.rint(np.linspace(0, width, cols + 1)).astype(int)
    out = np.zeros((rows * cols, n_classes), dtype=np.float32)
    for i in range(rows):
        for j in range(cols):
            cell = maps[:, r_edges[i]:r_edges[i + 1], c_edges[j]:c_edges[j + 1]].ravel()
            counts = np.bincount(cell, minlength=n_classes)
            out[i * cols + j] = counts / max(1, counts.sum())
    return out


def token_targets(scene: Scene, timestamps: Sequence[float], grid_thw: Sequence[int], *,
                  spatial_merge: int = 2, temporal_patch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(colour shares N×len(COLOUR_CLASSES), shape shares N×len(SHAPE_CLASSES)) for one video's merged
    tokens, N = t · (h / spatial_merge) · (w / spatial_merge) with grid_thw = (t, h, w) in patches.

    timestamps: the sampled frames' times in seconds; there must be t · temporal_patch of them (the
    processor's grid), else the targets would describe other frames than the tokens: ValueError."""
    t, h, w = (int(x) for x in grid_thw)
    if len(timestamps) != t * temporal_patch:
        raise ValueError(f"{len(timestamps)} frame times for a grid of {t} temporal patches of {temporal_patch}")
    if h % spatial_merge or w % spatial_merge:
        raise ValueError(f"grid {h}x{w} patches is not a multiple of the merge size {spatial_merge}")
    rows, cols = h // spatial_merge, w // spatial_merge
    colour_parts, shape_parts = [], []
    for k in range(t):
        maps = [label_maps(scene, float(ts)) for ts in timestamps[k * temporal_patch:(k + 1) * temporal_patch]]
        colour_parts.append(_cell_shares(np.stack([m[0] for m in maps]), rows, cols, len(COLOUR_CLASSES)))
        shape_parts.append(_cell_shares(np.stack([m[1] for m in maps]), rows, cols, len(SHAPE_CLASSES)))
    return np.concatenate(colour_parts), np.concatenate(shape_parts)
