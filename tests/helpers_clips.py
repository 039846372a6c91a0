"""Importer fixtures as workspaces: the hand-made annotation files of tests/fixtures/importers/<name>/ are
copied into a temporary workspace and the tiny clips their `clips.json` lists are rendered there with PyAV
(the repository keeps no video files).

`clips.json` maps a video path (relative to the fixture folder) to {"fps": "25" or "30000/1001",
"frames": n, "width": w, "height": h}: an H.264 clip of n frames whose content moves frame to frame.
"""
from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np

from videoreasoner.video.decoding import encode_mp4

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "importers"


def render_clip(path: Path, fps: str | int, frames: int, width: int, height: int) -> None:
    """A clip of `frames` frames at `fps` (a fraction as text, e.g. "30000/1001"): a square sliding right."""
    video = np.full((frames, height, width, 3), 30, np.uint8)
    side = max(2, min(width, height) // 4)
    for k in range(frames):
        x = (k * 3) % max(1, width - side)
        video[k, height // 3:height // 3 + side, x:x + side] = (220, 40, 40)
    encode_mp4(video, Fraction(str(fps)), path)


def fixture_workspace(name: str, root: Path) -> Path:
    """Copy fixture `name` to root/<name>/ (clips.json left out) and render its clips; returns that folder."""
    src, dst = FIXTURES / name, Path(root) / name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("clips.json"))
    for rel, spec in json.loads((src / "clips.json").read_text(encoding="utf-8")).items():
        render_clip(dst / rel, spec["fps"], spec["frames"], spec["width"], spec["height"])
    return dst
