"""One random stream per synthetic clip, so a clip's scene (and every record about it) depends only on
the world's seed, the split and the clip's index: not on generation order or worker count. The
generate stage draws scenes from it; the pretrain stage rebuilds the same scenes for its dense
per-token supervision (videoreasoner/training/dense_targets.py)."""
from __future__ import annotations

import numpy as np

from videoreasoner.core.schema import SPLITS
from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.scene import Scene, sample_scene


def video_rng(seed: int, split: str, index: int, mode: str = "default") -> np.random.Generator:
    """Independent stream per video: results do not depend on generation order or worker count."""
    key = [seed, SPLITS.index(split), index] + ([1] if mode == "long" else [])
    return np.random.default_rng(np.random.SeedSequence(key))


def scene_for(cfg: WorldConfig, split: str, index: int) -> tuple[Scene, np.random.Generator]:
    """The scene of clip `index` of `split`, and the stream positioned after it (questions draw next)."""
    rng = video_rng(cfg.seed, split, index)
    return sample_scene(rng, cfg), rng


def parse_video_id(video_id: str) -> tuple[str, int]:
    """'train-00012' -> ('train', 12); a long clip or any other id raises ValueError."""
    split, _, index = str(video_id).rpartition("-")
    if split not in SPLITS or not index.isdigit():
        raise ValueError(f"not a default synthetic clip id (<split>-<index>): {video_id!r}")
    return split, int(index)
