"""A synthetic concept world: coloured shapes that move, occlude each other, enter and leave.

Deterministic by seed. Each clip has target concepts ("red circle", "blue square", ...) and hard-negative
distractors that must not match them (same shape in another colour, same colour in another shape).
Every frame comes with per-object ground truth: a stable id, the concept, and the full-resolution
*visible* mask (what is left after nearer objects cover it). Also the data source for training the
built-in toy model (other seeds), so it is a library, not part of a command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 225),
    "yellow": (235, 205, 40),
}
SHAPES = ("circle", "square", "triangle")
DEFAULT_CONCEPTS = ("red circle", "blue square", "green triangle")
COLOR_JITTER = 18  # per-object shade offset, so a concept is a colour family, not one RGB value


def split_concept(concept: str) -> tuple[str, str]:
    """``"red circle"`` -> ``("red", "circle")``; ``ValueError`` for anything outside the world's vocabulary."""
    parts = concept.split()
    if len(parts) != 2 or parts[0] not in COLORS or parts[1] not in SHAPES:
        raise ValueError(
            f"unknown concept {concept!r}: expected '<colour> <shape>' with colour in "
            f"{sorted(COLORS)} and shape in {list(SHAPES)}"
        )
    return parts[0], parts[1]


def all_concepts() -> list[str]:
    """Every concept the world can draw."""
    return [f"{c} {s}" for c in COLORS for s in SHAPES]


def hard_negatives(concepts: tuple[str, ...] | list[str]) -> list[str]:
    """Concepts that share a colour or a shape with a target but are not a target."""
    targets = [split_concept(c) for c in concepts]
    colors, shapes = {c for c, _ in targets}, {s for _, s in targets}
    return [
        c
        for c in all_concepts()
        if c not in concepts and (split_concept(c)[0] in colors or split_concept(c)[1] in shapes)
    ]


@dataclass(frozen=True)
class WorldConfig:
    """What a clip contains. Sizes are in pixels; speeds in pixels per frame."""

    width: int = 320
    height: int = 240
    frames: int = 60
    fps: float = 15.0
    seed: int = 0
    concepts: tuple[str, ...] = DEFAULT_CONCEPTS
    objects_per_concept: int = 2
    distractors: int = 4
    min_size: float = 0.07  # object radius as a fraction of the shorter image side
    max_size: float = 0.14
    max_speed: float = 0.025  # fraction of the shorter side per frame
    start_stamp_ns: int = 1_700_000_000_000_000_000

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"image size {self.width}x{self.height} is too small (at least 16x16)")
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not self.concepts:
            raise ValueError("concepts must not be empty")
        for concept in self.concepts:
            split_concept(concept)


@dataclass
class WorldFrame:
    """One rendered frame and its ground truth (objects in ascending id order, visible ones only)."""

    index: int
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    ids: np.ndarray  # (N,) int64
    concepts: list[str]
    masks: np.ndarray  # (N, H, W) bool, visible pixels


@dataclass
class _Objects:
    """Per-object parameters, one row per object (vectorized over objects)."""

    concepts: list[str]
    shape: np.ndarray  # (N,) index into SHAPES
    color: np.ndarray  # (N, 3) uint8
    radius: np.ndarray  # (N,)
    start: np.ndarray  # (N, 2) xy at its first frame
    velocity: np.ndarray  # (N, 2)
    depth: np.ndarray  # (N,) drawing order: larger is nearer
    born: np.ndarray  # (N,) first frame it exists
    dies: np.ndarray  # (N,) first frame it no longer exists


class World:
    """Renders the clip described by a :class:`WorldConfig`; ``frame(t)`` is random access."""

    def __init__(self, config: WorldConfig):
        self.config = config
        rng = np.random.default_rng(config.seed)
        concepts = [c for c in config.concepts for _ in range(config.objects_per_concept)]
        negatives = hard_negatives(config.concepts)
        if negatives and config.distractors:
            concepts += [negatives[i] for i in rng.integers(0, len(negatives), config.distractors)]
        self._objects = self._sample_objects(concepts, rng)
        self._background = self._sample_background(rng)
        ys, xs = np.mgrid[0 : config.height, 0 : config.width]
        self._xs, self._ys = xs.astype(np.float32), ys.astype(np.float32)

    @property
    def negative_concepts(self) -> list[str]:
        """Concepts of the vocabulary that no object in this clip has (phrases whose answer is 'none')."""
        present = set(self._objects.concepts)
        return [c for c in all_concepts() if c not in present]

    def _sample_objects(self, concepts: list[str], rng: np.random.Generator) -> _Objects:
        cfg, n = self.config, len(concepts)
        side = min(cfg.width, cfg.height)
        radius = rng.uniform(cfg.min_size, cfg.max_size, n) * side
        start = np.stack([rng.uniform(0, cfg.width, n), rng.uniform(0, cfg.height, n)], 1)
        angle = rng.uniform(0, 2 * np.pi, n)
        speed = rng.uniform(0.3, 1.0, n) * cfg.max_speed * side
        velocity = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
        # About a third of the objects enter late or leave early (besides leaving through the border).
        born = np.where(rng.random(n) < 0.3, rng.integers(0, max(1, cfg.frames // 2), n), 0)
        dies = np.where(rng.random(n) < 0.3, rng.integers(cfg.frames // 2, cfg.frames + 1, n), cfg.frames)
        dies = np.maximum(dies, born + 1)
        base = np.array([COLORS[split_concept(c)[0]] for c in concepts], np.int64).reshape(n, 3)
        color = np.clip(base + rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, (n, 3)), 0, 255).astype(np.uint8)
        shape = np.array([SHAPES.index(split_concept(c)[1]) for c in concepts], np.int64)
        return _Objects(
            concepts=concepts,
            shape=shape,
            color=color,
            radius=radius,
            start=start,
            velocity=velocity,
            depth=rng.permutation(n),
            born=born,
            dies=dies,
        )

    def _sample_background(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        ys, xs = np.mgrid[0 : cfg.height, 0 : cfg.width].astype(np.float32)
        tint = rng.uniform(90, 150, 3)
        gradient = (xs / cfg.width - 0.5)[..., None] * 40 + (ys / cfg.height - 0.5)[..., None] * 25
        noise = rng.normal(0, 6, (cfg.height, cfg.width, 3))
        return np.clip(tint * 0.6 + gradient + noise, 0, 255).astype(np.uint8)  # greyish, low saturation

    def distances_m(self, near: float, far: float) -> np.ndarray:
        """Each object's distance from the camera (index: id - 1), in [near, far] metres and consistent with the
        drawing order (a nearer object covers a farther one). From a random stream of its own: the clip's images
        are the same with or without distances."""
        rng = np.random.default_rng([self.config.seed, 7])
        far_to_near = np.sort(rng.uniform(near, far, len(self._objects.concepts)))[::-1]
        return far_to_near[self._objects.depth]  # depth: the drawing rank, larger is nearer

    def positions(self, t: int) -> np.ndarray:
        """(N, 2) object centres at frame ``t``: straight motion, reflected at a border one radius
        outside the image, so objects leave the view and come back."""
        cfg, obj = self.config, self._objects
        lo = -obj.radius[:, None]
        span = np.array([cfg.width, cfg.height])[None, :] + 2 * obj.radius[:, None]
        p = obj.start + obj.velocity * (t - obj.born)[:, None] - lo
        p = np.mod(p, 2 * span)
        return np.where(p > span, 2 * span - p, p) + lo

    def frame(self, t: int) -> WorldFrame:
        """Render frame ``t`` (0-based) with its ground truth."""
        cfg, obj = self.config, self._objects
        if not 0 <= t < cfg.frames:
            raise ValueError(f"frame index {t} is outside [0, {cfg.frames})")
        centres = self.positions(t)
        alive = np.flatnonzero((obj.born <= t) & (t < obj.dies))
        image = self._background.copy()
        owner = np.full((cfg.height, cfg.width), -1, np.int64)  # nearest object covering each pixel
        for k in alive[np.argsort(obj.depth[alive], kind="stable")]:  # far to near
            window, inside = self._rasterize(k, centres[k])
            if window is None:
                continue
            owner[window][inside] = k
            image[window][inside] = obj.color[k]
        visible = np.unique(owner[owner >= 0])  # fully covered or off-screen objects are absent
        return WorldFrame(
            index=t,
            stamp_ns=self.stamp_ns(t),
            image=image,
            ids=visible + 1,
            concepts=[obj.concepts[k] for k in visible],
            masks=owner[None] == visible[:, None, None],
        )

    def stamp_ns(self, t: int) -> int:
        """Capture time of frame ``t``."""
        return int(self.config.start_stamp_ns + round(t * 1e9 / self.config.fps))

    def _rasterize(self, k: int, centre: np.ndarray):
        """The object's bounding window (slices) and its pixel mask inside that window."""
        cfg, obj = self.config, self._objects
        r = float(obj.radius[k])
        x0, x1 = max(0, int(centre[0] - r)), min(cfg.width, int(np.ceil(centre[0] + r)) + 1)
        y0, y1 = max(0, int(centre[1] - r)), min(cfg.height, int(np.ceil(centre[1] + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            return None, None
        window = (slice(y0, y1), slice(x0, x1))
        dx, dy = self._xs[window] - centre[0], self._ys[window] - centre[1]
        shape = SHAPES[obj.shape[k]]
        if shape == "circle":
            inside = dx * dx + dy * dy <= r * r
        elif shape == "square":
            half = r * 0.8
            inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
        else:  # triangle pointing up, inscribed in the circle of radius r
            inside = (dy <= r * 0.5) & (np.sqrt(3) * dx - dy <= r) & (-np.sqrt(3) * dx - dy <= r)
        return window, inside

    def __iter__(self) -> Iterator[WorldFrame]:
        for t in range(self.config.frames):
            yield self.frame(t)
