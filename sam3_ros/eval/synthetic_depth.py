"""Aligned depth for the synthetic world, with the 3D ground truth of every visible object.

Each object is a flat shape facing the camera at its own distance (``NEAR_M`` to ``FAR_M``, nearer objects
cover farther ones) in front of a slanted background plane; a pinhole camera (``synthetic_intrinsics``) sees
it. The sensor model adds what makes real depth hard: noise that grows with the square of the distance, as
stereo depth does (sigma = ``NOISE_PER_M2`` z^2: 1 mm at 1 m, 9 mm at 3 m), "flying pixels" along depth edges
(a mix of the two sides' depths), scattered dropouts and a few larger holes (0 = no depth). Deterministic by
the world's seed and the frame index.

Ground truth of a visible object (its visible mask at its true distance z, pixel centres at integer
coordinates): centroid ((mean u - cx) z / fx, (mean v - cy) z / fy, z); extent ((u_max - u_min + 1) z / fx,
(v_max - v_min + 1) z / fy, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec.depth import Intrinsics
from .synthetic import World, WorldFrame

NEAR_M, FAR_M = 1.0, 3.0  # object distances
BACKGROUND_M = 4.0  # the background plane's distance at the image centre
NOISE_PER_M2 = 0.001  # depth noise sigma = NOISE_PER_M2 * z^2
FLYING_FRACTION = 0.5  # edge pixels whose depth mixes both sides
DROPOUT_FRACTION = 0.02  # scattered pixels without depth
HOLES = 3  # larger round holes per frame, radius up to HOLE_RADIUS of the shorter side
HOLE_RADIUS = 0.06


def synthetic_intrinsics(width: int, height: int) -> Intrinsics:
    """The synthetic camera: square pixels, about 58 degrees horizontal field of view, principal point a little
    off the image centre (so that a code path that ignores cx, cy shows)."""
    focal = 0.9 * width
    return Intrinsics(
        fx=focal, fy=focal, cx=(width - 1) / 2 + 2.5, cy=(height - 1) / 2 - 1.5, width=width, height=height
    )


@dataclass
class DepthFrame:
    """One rendered depth image (metres, 0 = no depth) and the 3D truth of its visible objects."""

    depth: np.ndarray  # (H, W) float32
    ids: np.ndarray  # (N,) object ids, as the WorldFrame's
    centroids: np.ndarray  # (N, 3) metres, camera optical frame
    extents: np.ndarray  # (N, 3)


class DepthRenderer:
    """Renders the aligned depth of a world's frames."""

    def __init__(self, world: World):
        cfg = world.config
        self.seed = cfg.seed
        self.intrinsics = synthetic_intrinsics(cfg.width, cfg.height)
        self.distances = world.distances_m(NEAR_M, FAR_M)
        ys, xs = np.mgrid[0 : cfg.height, 0 : cfg.width].astype(np.float32)
        self._xs, self._ys = xs, ys
        self._background = BACKGROUND_M + 0.5 * (ys / cfg.height - 0.5) + 0.3 * (xs / cfg.width - 0.5)

    def truth(self, frame: WorldFrame) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) centroids and (N, 3) extents of the frame's visible objects, in the order of ``frame.ids``."""
        k = self.intrinsics
        centroids, extents = [], []
        for object_id, mask in zip(frame.ids, frame.masks):
            z = float(self.distances[int(object_id) - 1])
            rows, cols = np.nonzero(mask)
            centroids.append(((cols.mean() - k.cx) * z / k.fx, (rows.mean() - k.cy) * z / k.fy, z))
            extents.append(((cols.max() - cols.min() + 1) * z / k.fx, (rows.max() - rows.min() + 1) * z / k.fy, 0.0))
        return np.asarray(centroids, np.float64).reshape(-1, 3), np.asarray(extents, np.float64).reshape(-1, 3)

    def render(self, frame: WorldFrame) -> DepthFrame:
        """The depth image of ``frame`` as the sensor sees it, and the truth."""
        rng = np.random.default_rng([self.seed, 11, frame.index])
        true = self._background.copy()
        for object_id, mask in zip(frame.ids, frame.masks):
            true[mask] = self.distances[int(object_id) - 1]
        depth = true.copy()
        # flying pixels: on each side of a depth edge, a mix of the two depths
        for axis in (0, 1):
            here = np.delete(true, -1, axis)
            there = np.delete(true, 0, axis)
            edge = np.abs(here - there) > 0.05
            mix = rng.uniform(0, 1, edge.shape).astype(np.float32)
            flying = edge & (rng.random(edge.shape) < FLYING_FRACTION)
            target = depth[:-1, :] if axis == 0 else depth[:, :-1]
            target[flying] = (mix * here + (1 - mix) * there)[flying]
        depth += rng.normal(0.0, 1.0, depth.shape).astype(np.float32) * NOISE_PER_M2 * depth * depth
        depth[rng.random(depth.shape) < DROPOUT_FRACTION] = 0.0
        side = min(depth.shape)
        for _ in range(HOLES):
            cx, cy = rng.uniform(0, depth.shape[1]), rng.uniform(0, depth.shape[0])
            radius = rng.uniform(0.2, 1.0) * HOLE_RADIUS * side
            depth[(self._xs - cx) ** 2 + (self._ys - cy) ** 2 <= radius * radius] = 0.0
        centroids, extents = self.truth(frame)
        return DepthFrame(
            depth=depth.astype(np.float32), ids=np.asarray(frame.ids), centroids=centroids, extents=extents
        )
