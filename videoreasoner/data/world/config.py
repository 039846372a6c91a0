"""Typed settings of the synthetic world (params.yaml `data.synthetic`), checked once at load time."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from videoreasoner.core.params import check_keys, read_section
from videoreasoner.core.schema import PROBLEM_TYPES, SPLITS

PALETTE = {  # saturated RGB colours that stay apart after H.264 chroma subsampling
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 240),
    "yellow": (240, 225, 30),
    "magenta": (225, 40, 225),
    "cyan": (30, 215, 225),
    "orange": (250, 140, 10),
    "white": (245, 245, 245),
}
BACKGROUND = (16, 16, 16)
DISTRACTOR_GREY = (120, 120, 120)
SHAPES = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class LongConfig:
    """Long clips ("needle in a video haystack", params `data.synthetic.long`; videoreasoner/data/world/long.py):
    durations in [min, max] seconds (whole seconds) at a low frame rate, a few coloured shapes each
    visible for `event_s` seconds, as many grey shapes as brief (decoys), and grey dots drifting with
    wrap-around the whole time. Off by default (no videos)."""

    PARAMS_SECTION: ClassVar[str] = "data.synthetic.long"

    videos: dict[str, int] = field(default_factory=dict)
    duration_s: tuple[float, float] = (60.0, 600.0)
    fps: int = 1
    events: tuple[int, int] = (1, 3)
    decoys: tuple[int, int] = (2, 4)
    event_s: tuple[int, int] = (2, 6)
    dots: tuple[int, int] = (1, 3)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "LongConfig":
        cfg = read_section(params, cls)
        cfg.check()
        return cfg

    def check(self) -> None:
        def fail(key: str, problem: str) -> None:
            raise ValueError(f"params data.synthetic.long.{key}: {problem}")

        if set(self.videos) - set(SPLITS) or any(int(n) < 0 for n in self.videos.values()):
            fail("videos", f"splits must be among {SPLITS}, counts >= 0")
        if self.fps < 1:
            fail("fps", "must be >= 1")
        lo, hi = self.event_s
        if not 1 <= lo <= hi:
            fail("event_s", "need 1 <= min <= max (whole seconds)")
        if not hi + 2 <= self.duration_s[0] <= self.duration_s[1]:
            fail("duration_s", f"need {hi + 2} <= min <= max: room for the longest event and a second each side")
        if not 1 <= self.events[0] <= self.events[1]:
            fail("events", "need 1 <= min <= max")
        for key in ("decoys", "dots"):
            a, b = getattr(self, key)
            if not 0 <= a <= b:
                fail(key, "need 0 <= min <= max")


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the world. Sizes in pixels, times in seconds, speeds in pixels per second."""

    PARAMS_SECTION: ClassVar[str] = "data.synthetic"

    seed: int = 1234
    videos: dict[str, int] = field(default_factory=lambda: {"train": 4000, "val": 100, "test": 320})
    width: int = 112
    height: int = 112
    fps: int = 4
    duration_s: float = 8.0
    objects: tuple[int, int] = (1, 2)
    radius_px: tuple[int, int] = (16, 22)
    speed_px_s: tuple[float, float] = (12.0, 40.0)
    distractors: tuple[int, int] = (0, 2)
    # Appearance boundaries are multiples of this. Qwen2.5-VL merges frame pairs into one temporal
    # patch: with the model sampling at f fps, a grid of 2/f seconds puts every boundary on a patch
    # boundary; 1/fps (one frame) lets boundaries fall anywhere.
    boundary_grid_s: float = 1.0
    box_step_s: float = 2.0  # spacing of annotated boxes in a spatio-temporal tube
    colours: tuple[str, ...] = tuple(PALETTE)
    shapes: tuple[str, ...] = SHAPES
    items_per_video: dict[str, int] = field(default_factory=lambda: {
        "multiple_choice": 2, "numerical": 1, "temporal_grounding": 1, "spatial_grounding": 1,
        "spatio_temporal_grounding": 1, "free_form": 1, "regression": 1})
    perception_splits: tuple[str, ...] = ("train", "val")
    perception_per_video: int = 8
    crf: int = 18
    workers: int = 2
    long: LongConfig = field(default_factory=LongConfig)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "WorldConfig":
        params = check_keys(cls.PARAMS_SECTION, params, (f.name for f in fields(cls)))
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        values["long"] = LongConfig.from_params(params.get("long"))
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        def fail(key: str, problem: str) -> None:
            raise ValueError(f"params data.synthetic.{key}: {problem}")

        if set(self.videos) - set(SPLITS):
            fail("videos", f"splits must be among {SPLITS}")
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 32:
            fail("width/height", "must be even and at least 32 pixels")
        if self.fps < 1:
            fail("fps", "must be >= 1")
        frames_per_grid = self.boundary_grid_s * self.fps
        if self.boundary_grid_s <= 0 or abs(frames_per_grid - round(frames_per_grid)) > 1e-9:
            fail("boundary_grid_s", "must be a positive multiple of 1/fps")
        if self.duration_s < 2 * self.boundary_grid_s:
            fail("duration_s", "must cover at least two boundary grid steps")
        lo, hi = self.objects
        if not 1 <= lo <= hi <= min(len(self.colours), len(self.shapes)):
            fail("objects", "need 1 <= min <= max <= number of colours and of shapes")
        if self.radius_px[0] < 3 or 2 * self.radius_px[1] >= min(self.width, self.height) // 2:
            fail("radius_px", "radius must be >= 3 and the object under half the frame")
        if not 0 < self.speed_px_s[0] <= self.speed_px_s[1]:
            fail("speed_px_s", "need 0 < min <= max")
        if unknown := set(self.colours) - set(PALETTE):
            fail("colours", f"unknown colour {sorted(unknown)[0]} (known: {list(PALETTE)})")
        if unknown := set(self.shapes) - set(SHAPES):
            fail("shapes", f"unknown shape {sorted(unknown)[0]} (known: {list(SHAPES)})")
        if len(self.colours) < 4 or len(self.shapes) < 2:
            fail("colours/shapes", "need at least 4 colours and 2 shapes for multiple-choice options")
        if unknown := set(self.items_per_video) - set(PROBLEM_TYPES):
            fail("items_per_video", f"unknown problem type {sorted(unknown)[0]}")
        if self.long.events[1] > min(len(self.colours), len(self.shapes)):
            fail("long.events", "at most as many events as colours and shapes (each name is unique)")

    @property
    def n_frames(self) -> int:
        return round(self.duration_s * self.fps)
