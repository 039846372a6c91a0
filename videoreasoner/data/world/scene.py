"""Scene sampling and geometry: where each object is at any time, in pixels and seconds.

Conventions: frame k shows time t_k = k / fps and covers [t_k, t_k + 1/fps). An object is drawn in
frame k iff enter <= t_k < exit, so its visible span is exactly the half-open [enter, exit) (both on
the boundary grid), the project's span rule (videoreasoner/answers/spans.py): the frame at `exit` no
longer shows it, and a tube's ground-truth frame set is exactly the frames it is drawn in. Its centre
moves linearly from the entry edge (touching it) to the exit edge, so a drawn object is always whole
inside the frame and its box is [cx - r, cy - r, cx + r, cy + r].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videoreasoner.data.world.config import WorldConfig

# Edge an object enters from -> (edge it leaves by, direction words).
PATHS = {
    "left": ("right", "left to right"),
    "right": ("left", "right to left"),
    "top": ("bottom", "top to bottom"),
    "bottom": ("top", "bottom to top"),
}
DIRECTIONS = tuple(direction for _, direction in PATHS.values())


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    radius: float  # pixels
    entry: str  # edge name
    start_xy: tuple[float, float]  # centre at `enter`, pixels
    end_xy: tuple[float, float]  # centre at `exit`, pixels
    enter: float  # seconds, on the boundary grid: the first frame time it is drawn at
    exit: float  # seconds, on the boundary grid, > enter, <= duration: the first frame time it is gone

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def exit_edge(self) -> str:
        return PATHS[self.entry][0]

    @property
    def direction(self) -> str:
        return PATHS[self.entry][1]

    def visible_at(self, t: float) -> bool:
        """enter <= t < exit (half-open; the 1e-9 only absorbs float error of k / fps on the grid)."""
        return self.enter - 1e-9 <= t < self.exit - 1e-9

    def centre_at(self, t: float) -> tuple[float, float]:
        a = (t - self.enter) / (self.exit - self.enter)
        (x0, y0), (x1, y1) = self.start_xy, self.end_xy
        return x0 + a * (x1 - x0), y0 + a * (y1 - y0)


@dataclass(frozen=True)
class Distractor:
    """A small grey dot drifting across the whole clip; never asked about."""

    radius: float
    start_xy: tuple[float, float]
    velocity: tuple[float, float]  # pixels per second

    def centre_at(self, t: float) -> tuple[float, float]:
        return self.start_xy[0] + self.velocity[0] * t, self.start_xy[1] + self.velocity[1] * t


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    fps: int
    duration: float
    objects: tuple[SceneObject, ...]
    distractors: tuple[Distractor, ...]

    @property
    def n_frames(self) -> int:
        return round(self.duration * self.fps)

    def frame_time(self, k: int) -> float:
        return k / self.fps

    def visible_at(self, t: float) -> list[SceneObject]:
        return [o for o in self.objects if o.visible_at(t)]

    def box_at(self, obj: SceneObject, t: float) -> list[float]:
        """Normalised [x1, y1, x2, y2] of `obj` at time t (visible then), rounded to 0.01 (about one
        pixel at 112 px) so that the answer text the model is taught to write is the exact truth."""
        cx, cy = obj.centre_at(t)
        r = obj.radius
        return [round(v, 2) for v in ((cx - r) / self.width, (cy - r) / self.height,
                                      (cx + r) / self.width, (cy + r) / self.height)]

    def by_appearance(self) -> list[SceneObject]:
        return sorted(self.objects, key=lambda o: o.enter)


def _edge_point(edge: str, along: float, r: float, w: int, h: int) -> tuple[float, float]:
    """Centre touching `edge` from inside, at position `along` on the other axis."""
    return {"left": (r, along), "right": (w - r, along), "top": (along, r), "bottom": (along, h - r)}[edge]


def _sample_object(rng: np.random.Generator, cfg: WorldConfig, colour: str, shape: str,
                   taken_enters: set[float]) -> SceneObject | None:
    r = float(rng.integers(cfg.radius_px[0], cfg.radius_px[1] + 1))
    entry = str(rng.choice(list(PATHS)))
    exit_edge = PATHS[entry][0]
    span = cfg.height if entry in ("left", "right") else cfg.width
    start = _edge_point(entry, float(rng.uniform(r, span - r)), r, cfg.width, cfg.height)
    end = _edge_point(exit_edge, float(rng.uniform(r, span - r)), r, cfg.width, cfg.height)
    path = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    grid = cfg.boundary_grid_s
    steps = max(1, round(path / float(rng.uniform(*cfg.speed_px_s)) / grid))
    steps = min(steps, round(cfg.duration_s / grid))
    last_start = round(cfg.duration_s / grid) - steps
    choices = [k * grid for k in range(last_start + 1) if round(k * grid, 6) not in taken_enters]
    if not choices:
        return None
    enter = round(float(rng.choice(choices)), 6)
    return SceneObject(colour, shape, r, entry, start, end, enter, round(enter + steps * grid, 6))


def sample_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """A scene with unique colours and unique shapes (so "the red X" and "the circle" are unambiguous)
    and distinct appearance times (so "which appears first" has one answer)."""
    n = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    colours = rng.choice(list(cfg.colours), size=n, replace=False)
    shapes = rng.choice(list(cfg.shapes), size=n, replace=False)
    objects: list[SceneObject] = []
    for colour, shape in zip(colours, shapes):
        obj = _sample_object(rng, cfg, str(colour), str(shape), {o.enter for o in objects})
        if obj is not None:
            objects.append(obj)
    distractors = []
    for _ in range(int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))):
        start = (float(rng.uniform(0, cfg.width)), float(rng.uniform(0, cfg.height)))
        velocity = tuple(float(v) for v in rng.uniform(-cfg.speed_px_s[1], cfg.speed_px_s[1], size=2) / 2)
        distractors.append(Distractor(float(rng.integers(2, 4)), start, velocity))
    return Scene(cfg.width, cfg.height, cfg.fps, cfg.duration_s, tuple(objects), tuple(distractors))
