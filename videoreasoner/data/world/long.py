"""Long clips: a "needle in a video haystack" for long-video sampling (params `data.synthetic.long`).

A clip lasts one to ten minutes (whole seconds) at a low frame rate (1 fps by default). A few coloured
shapes (the needles) each stand still at one place for 2–6 s; grey shapes (decoys) appear as briefly;
grey dots drift the whole time, wrapping around the frame. Needles and decoys never overlap in time, are
at least GAP_S seconds apart and EDGE_S from either end, so each boundary is one clean scene change that
a change detector sees as well as a needle. Times follow scene.py: frame k shows t_k = k / fps and a
shape is drawn iff enter <= t_k < exit, so its span is exactly the half-open [enter, exit) (whole
seconds; videoreasoner/answers/spans.py).
Questions, in the record schema: "When is the red square visible?" (temporal_grounding, one per needle)
and how many coloured shapes appear (numerical), each with an exact chain of thought.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videoreasoner.data.world.config import BACKGROUND, DISTRACTOR_GREY, PALETTE, LongConfig, WorldConfig
from videoreasoner.data.world.questions import Item, appearance, fmt_s
from videoreasoner.data.world.render import paint

GAP_S, EDGE_S = 2, 1  # seconds between two shapes / between a shape and either end of the clip


@dataclass(frozen=True)
class Event:
    """A shape that stands still at xy (pixels) and is visible for t in [enter, exit) seconds."""

    colour: str  # a PALETTE name, or "grey" for a decoy
    shape: str
    radius: float
    xy: tuple[float, float]
    enter: float
    exit: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def visible_at(self, t: float) -> bool:
        return self.enter - 1e-9 <= t < self.exit - 1e-9


@dataclass(frozen=True)
class Dot:
    """A grey dot drifting at constant velocity (pixels per second), wrapping around the frame."""

    radius: float
    start_xy: tuple[float, float]
    velocity: tuple[float, float]


@dataclass(frozen=True)
class LongScene:
    width: int
    height: int
    fps: int
    duration: float
    needles: tuple[Event, ...]  # in time order
    decoys: tuple[Event, ...]
    dots: tuple[Dot, ...]

    @property
    def n_frames(self) -> int:
        return round(self.duration * self.fps)


def _spans(rng: np.random.Generator, durations: list[int], total: int) -> list[tuple[int, int]]:
    """Non-overlapping [enter, exit) spans (whole seconds) in the given order, GAP_S apart and EDGE_S
    from the ends, the slack spread at random."""
    slack = total - sum(durations) - GAP_S * (len(durations) - 1) - 2 * EDGE_S
    cuts = np.sort(rng.integers(0, slack + 1, size=len(durations)))
    spans, t = [], EDGE_S
    for d, extra in zip(durations, np.diff(np.concatenate([[0], cuts]))):
        t += int(extra)
        spans.append((t, t + d))
        t += d + GAP_S
    return spans


def sample_long_scene(rng: np.random.Generator, world: WorldConfig) -> LongScene:
    """Needles with unique colours and shapes, decoys, dots; shapes that do not fit are dropped
    (decoys first, at least one needle is kept)."""
    cfg: LongConfig = world.long
    duration = int(rng.integers(int(cfg.duration_s[0]), int(cfg.duration_s[1]) + 1))
    n_needles = int(rng.integers(cfg.events[0], cfg.events[1] + 1))
    n_decoys = int(rng.integers(cfg.decoys[0], cfg.decoys[1] + 1))
    kinds = ["needle"] * n_needles + ["decoy"] * n_decoys
    durations = [int(d) for d in rng.integers(cfg.event_s[0], cfg.event_s[1] + 1, size=len(kinds))]
    while len(kinds) > 1 and sum(durations) + GAP_S * (len(kinds) - 1) + 2 * EDGE_S > duration:
        drop = kinds.index("decoy") if "decoy" in kinds else len(kinds) - 1
        kinds.pop(drop), durations.pop(drop)
    order = rng.permutation(len(kinds))
    kinds, durations = [kinds[i] for i in order], [durations[i] for i in order]
    spans = _spans(rng, durations, duration)
    n_needles = kinds.count("needle")
    colours = [str(c) for c in rng.choice(list(world.colours), size=n_needles, replace=False)]
    shapes = [str(s) for s in rng.choice(list(world.shapes), size=n_needles, replace=False)]
    needles, decoys = [], []
    for kind, (enter, exit_) in zip(kinds, spans):
        r = float(rng.integers(world.radius_px[0], world.radius_px[1] + 1))
        xy = (float(rng.uniform(r, world.width - r)), float(rng.uniform(r, world.height - r)))
        if kind == "needle":
            needles.append(Event(colours.pop(), shapes.pop(), r, xy, float(enter), float(exit_)))
        else:
            decoys.append(Event("grey", str(rng.choice(list(world.shapes))), r, xy, float(enter), float(exit_)))
    dots = []
    for _ in range(int(rng.integers(cfg.dots[0], cfg.dots[1] + 1))):
        start = (float(rng.uniform(0, world.width)), float(rng.uniform(0, world.height)))
        velocity = tuple(float(v) for v in rng.uniform(-world.speed_px_s[1], world.speed_px_s[1], size=2) / 4)
        dots.append(Dot(float(rng.integers(2, 4)), start, velocity))
    return LongScene(world.width, world.height, cfg.fps, float(duration), tuple(needles), tuple(decoys),
                     tuple(dots))


def render_long(scene: LongScene) -> np.ndarray:
    """T×H×W×3 uint8 frames: background, dots, decoys (grey), needles (their colour)."""
    frames = np.empty((scene.n_frames, scene.height, scene.width, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    for k in range(scene.n_frames):
        t = k / scene.fps
        for dot in scene.dots:
            x = (dot.start_xy[0] + dot.velocity[0] * t) % scene.width
            y = (dot.start_xy[1] + dot.velocity[1] * t) % scene.height
            paint(frames[k], "circle", x, y, dot.radius, DISTRACTOR_GREY)
        for event in scene.decoys:
            if event.visible_at(t):
                paint(frames[k], event.shape, *event.xy, event.radius, DISTRACTOR_GREY)
        for event in scene.needles:
            if event.visible_at(t):
                paint(frames[k], event.shape, *event.xy, event.radius, PALETTE[event.colour])
    return frames


def long_items(scene: LongScene) -> list[Item]:
    """One "when is X visible" item per needle (time order), then the count of coloured shapes."""
    items: list[Item] = []
    for e in scene.needles:
        items.append(("temporal_grounding", {
            "task": "when_visible", "question": f"When is the {e.name} visible?", "answer": [e.enter, e.exit],
            "reasoning": f"{appearance(e)}. So it is visible from {fmt_s(e.enter)} to {fmt_s(e.exit)} s."}))
    listed = ", ".join(f"the {e.name} ({fmt_s(e.enter)} to {fmt_s(e.exit)} s)" for e in scene.needles)
    items.append(("numerical", {
        "task": "count", "answer": str(len(scene.needles)),
        "question": "How many coloured shapes appear in the video? Ignore grey shapes and dots.",
        "reasoning": f"The coloured shapes that appear are {listed}. That makes {len(scene.needles)}."}))
    return items
