"""Where each instance is in 3D, from its mask and the aligned depth image.

Coordinates are the camera optical frame (x right, y down, z forward; metres), the frame of the image's
``frame_id``. Per instance, and only inside its 2D box:

- the mask is read on a regular grid, every s-th pixel with s chosen so that at most ``depth.max_samples``
  pixels are read, and eroded by ``depth.erode_px`` pixels (at least one grid step): edge pixels mix the
  object with what lies behind it (the eroded pixels read are ``pixels_read``). Masks held as run lengths are
  read from their runs at the grid points: nothing the size of the frame is made;
- depth that is 0, NaN or outside ``[depth.min_m, depth.max_m]`` is dropped, then depth further from the
  median than ``depth.outlier_mads`` scaled median absolute deviations (1.4826 MAD; at least 1% of the
  median depth) is an outlier;
- with at least ``depth.min_points`` pixels left (their number is ``points_used``), a plane
  z = a + b u + c v is fitted to them (depth clamped to their range). The **centroid** is the mean over the
  whole mask as read, before erosion, holes included, of each pixel back-projected at the plane's depth: the
  erosion and the holes bias neither the depth nor the position. Its covariance is that of the mean of the
  used points (their covariance over their number);
- the **box** (axis-aligned in the optical frame) spans the four corners of the 2D box (pixel edges) at the
  plane's depth there. Its depth range is widened by the spread of the depth around the plane: sqrt(12) times
  its standard deviation once the sensor noise (from the differences of horizontally neighbouring pixels) is
  taken out; 0 for a flat surface, the exact extent of a uniform spread.

The per-instance work is a handful of array operations on at most ``max_samples`` pixels (and a binary search
over the mask's runs); the statistics run over all instances at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..codec.depth import Intrinsics
from ..codec.rle import RleMasks
from ..engine.types import to_host
from ..settings import DepthSettings

MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation per median absolute deviation
MIN_BAND = 0.01  # outlier band of at least 1% of the median depth: noiseless or quantized depth keeps its pixels


@dataclass
class Instances3D:
    """3D of N instances (row i: instance i of the ``Instances`` it was computed for)."""

    valid: np.ndarray  # (N,) bool: enough valid depth for 3D (the other rows are 0)
    centroid: np.ndarray  # (N, 3) the mask's centroid on the plane fitted to the used depth, metres
    center: np.ndarray  # (N, 3) centre of the axis-aligned 3D box
    size: np.ndarray  # (N, 3) extent of the box along x, y, z
    covariance: np.ndarray  # (N, 3, 3) covariance of the centroid
    pixels_read: np.ndarray  # (N,) mask pixels read for the 3D, after erosion
    points_used: np.ndarray  # (N,) of those, the depth pixels behind the centroid (0 without 3D)
    points: list[np.ndarray] | None = None  # per instance the (k, 3) float32 points used, when asked for

    def __len__(self) -> int:
        return len(self.valid)

    @classmethod
    def empty(cls, n: int, with_points: bool = False) -> "Instances3D":
        """N instances, none with 3D."""
        return cls(
            valid=np.zeros(n, bool),
            centroid=np.zeros((n, 3)),
            center=np.zeros((n, 3)),
            size=np.zeros((n, 3)),
            covariance=np.zeros((n, 3, 3)),
            pixels_read=np.zeros(n, np.int64),
            points_used=np.zeros(n, np.int64),
            points=[np.zeros((0, 3), np.float32) for _ in range(n)] if with_points else None,
        )


def locate_instances(
    boxes,
    masks,
    depth: np.ndarray,
    scale: float,
    intrinsics: Intrinsics,
    settings: DepthSettings,
    with_points: bool = False,
) -> Instances3D:
    """The 3D of each instance. ``boxes`` (N, 4) xyxy pixels (max exclusive) and ``masks`` (N, H, W) bool, numpy
    or torch (only the grid points inside the boxes are read); ``depth`` (H, W) raw values, times ``scale`` in
    metres."""
    boxes = np.asarray(to_host(boxes), np.float64).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return Instances3D.empty(0, with_points)
    rows, cols, row_step, col_step = _grids(boxes, depth.shape, settings.max_samples)
    inside = (rows >= 0)[:, :, None] & (cols >= 0)[:, None, :]
    rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)
    footprint = _gather_masks(masks, rows, cols) & inside
    grid = _erode(footprint, -(-settings.erode_px // row_step), -(-settings.erode_px // col_step))
    with np.errstate(invalid="ignore"):  # NaN depth compares False
        z = depth[rows[:, :, None], cols[:, None, :]].astype(np.float64) * scale
        used = grid & (z > 0) & (z >= settings.min_m) & (z <= settings.max_m)
    z, used, footprint = z.reshape(n, -1), used.reshape(n, -1), footprint.reshape(n, -1)
    count = used.sum(1)
    median = _row_median(np.where(used, z, np.inf), count)
    with np.errstate(invalid="ignore"):
        deviation = np.abs(z - median[:, None])
        mad = _row_median(np.where(used, deviation, np.inf), count)
        used &= deviation <= np.maximum(settings.outlier_mads * MAD_TO_SIGMA * mad, MIN_BAND * median)[:, None]
    count = used.sum(1)
    valid = count >= settings.min_points
    used &= valid[:, None]
    side = rows.shape[1]
    u = np.repeat(cols, side, axis=0).reshape(n, -1).astype(np.float64)  # cols[i] tiled over the grid's rows
    v = np.repeat(rows, side, axis=1).astype(np.float64)
    count, read = np.where(valid, count, 0), grid.sum((1, 2))
    return _summarize(boxes, z, u, v, used, footprint, side, count, read, intrinsics, with_points)


def _grids(boxes: np.ndarray, shape: tuple[int, int], max_samples: int):
    """Per instance the image rows and columns of its grid, sqrt(max_samples) of each over its box (every
    ``row_step``-th row, ``col_step``-th column; -1 past the box), and the two steps."""
    height, width = shape
    side = max(math.isqrt(max_samples), 2)
    x0 = np.clip(np.floor(boxes[:, 0]), 0, width).astype(np.int64)
    y0 = np.clip(np.floor(boxes[:, 1]), 0, height).astype(np.int64)
    x1 = np.clip(np.ceil(boxes[:, 2]), 0, width).astype(np.int64)
    y1 = np.clip(np.ceil(boxes[:, 3]), 0, height).astype(np.int64)
    row_step, col_step = np.maximum(-(-(y1 - y0) // side), 1), np.maximum(-(-(x1 - x0) // side), 1)
    rows = y0[:, None] + np.arange(side) * row_step[:, None]
    cols = x0[:, None] + np.arange(side) * col_step[:, None]
    return np.where(rows < y1[:, None], rows, -1), np.where(cols < x1[:, None], cols, -1), row_step, col_step


def _gather_masks(masks, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, R, C) bool: mask i at its grid's rows and columns. Masks held as run lengths (the engine's) are read
    from their runs, never decoded; tensors on a GPU are gathered there; anything else with one numpy gather."""
    n, height, width = masks.shape
    if isinstance(masks, RleMasks):
        flat = (rows[:, :, None] + cols[:, None, :] * height).reshape(n, -1)  # column-major, as runs count pixels
        return _gather_runs(masks.counts, flat, height * width).reshape(n, rows.shape[1], cols.shape[1])
    flat = ((np.arange(n)[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]).reshape(-1)
    if hasattr(masks, "detach"):
        if masks.device.type != "cpu":
            import torch  # loaded already when the masks are tensors

            picked = masks.reshape(-1)[torch.as_tensor(flat, device=masks.device)].cpu().numpy()
            return picked.reshape(n, rows.shape[1], cols.shape[1]).astype(bool, copy=False)
        masks = masks.detach().numpy()
    return np.asarray(masks).reshape(-1)[flat].reshape(n, rows.shape[1], cols.shape[1]).astype(bool, copy=False)


def _gather_runs(counts: list[np.ndarray], flat: np.ndarray, pixels: int) -> np.ndarray:
    """(N, K) bool: the pixels at column-major indices ``flat[i]`` of each mask i given by its COCO run lengths
    (``pixels`` per mask): one binary search over all run ends, the masks' ends laid end to end."""
    ends = np.cumsum(np.concatenate(counts), dtype=np.int64)
    first_run = np.cumsum([0] + [len(c) for c in counts[:-1]])  # index of each mask's first run in ``ends``
    run = np.searchsorted(ends, flat + (np.arange(len(counts)) * pixels)[:, None], side="right") - first_run[:, None]
    return run % 2 == 1  # runs alternate background, foreground, ... starting with background


def _erode(grid: np.ndarray, row_radius: np.ndarray, col_radius: np.ndarray) -> np.ndarray:
    """Erode each (R, C) grid by its own radius along rows and along columns, in steps of one cell (outside the
    grid counts as background)."""
    for done in range(int(max(row_radius.max(initial=0), col_radius.max(initial=0)))):
        eroded = grid.copy()
        eroded[:, 1:, :] &= grid[:, :-1, :]
        eroded[:, :-1, :] &= grid[:, 1:, :]
        eroded[:, (0, -1), :] = False
        grid = np.where((done < row_radius)[:, None, None], eroded, grid)
        eroded = grid.copy()
        eroded[:, :, 1:] &= grid[:, :, :-1]
        eroded[:, :, :-1] &= grid[:, :, 1:]
        eroded[:, :, (0, -1)] = False
        grid = np.where((done < col_radius)[:, None, None], eroded, grid)
    return grid


def _row_median(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of the first ``count`` values of each row once sorted (the rest are +inf); NaN for empty rows."""
    ordered = np.sort(values, axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, np.minimum(count // 2, values.shape[1] - 1)]
    return np.where(count > 0, (low + high) / 2, np.nan)


def _summarize(
    boxes: np.ndarray,
    z: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    used: np.ndarray,
    footprint: np.ndarray,
    side: int,
    count: np.ndarray,
    read: np.ndarray,
    intrinsics: Intrinsics,
    with_points: bool,
) -> Instances3D:
    """Centroid, covariance and box of each instance from its used samples (rows of the (N, side x side) arrays,
    each a grid flattened row by row; ``footprint``: the mask before erosion; ``count`` used samples, ``read``
    mask samples after erosion)."""
    n = len(z)
    valid = count > 0
    k = np.maximum(count, 1).astype(np.float64)
    z = np.where(used, z, 0.0)
    points = np.stack([(u - intrinsics.cx) / intrinsics.fx * z, (v - intrinsics.cy) / intrinsics.fy * z, z], -1)
    mean = points.sum(1) / k[:, None]
    spread = np.where(used[:, :, None], points - mean[:, None, :], 0.0)
    covariance = np.matmul(spread.transpose(0, 2, 1), spread) / (k * k)[:, None, None]  # of the mean

    # plane z = z_mean + b (u - u_mean) + c (v - v_mean) through the points, in pixel coordinates
    u_mean, v_mean = (u * used).sum(1) / k, (v * used).sum(1) / k
    du, dv, dz = np.where(used, u - u_mean[:, None], 0.0), np.where(used, v - v_mean[:, None], 0.0), spread[:, :, 2]
    suu, suv, svv = (du * du).sum(1), (du * dv).sum(1), (dv * dv).sum(1)
    suz, svz = (du * dz).sum(1), (dv * dz).sum(1)
    det = suu * svv - suv * suv
    well_posed = det > 1e-9 * np.maximum(suu * svv, 1e-12)  # points on one line fix no plane: keep it flat
    safe = np.where(well_posed, det, 1.0)
    b = np.where(well_posed, (svv * suz - suv * svz) / safe, 0.0)
    c = np.where(well_posed, (suu * svz - suv * suz) / safe, 0.0)
    z_low = np.where(used, z, np.inf).min(1)[:, None]
    z_high = np.where(used, z, -np.inf).max(1)[:, None]

    def plane(at_u: np.ndarray, at_v: np.ndarray) -> np.ndarray:  # depth of the plane, within the points' range
        at = mean[:, 2:3] + b[:, None] * (at_u - u_mean[:, None]) + c[:, None] * (at_v - v_mean[:, None])
        return np.clip(at, np.where(valid[:, None], z_low, 0.0), np.where(valid[:, None], z_high, 0.0))

    # the centroid of the whole mask (edges and holes included) on the plane: erosion biases nothing
    area = np.maximum(footprint.sum(1), 1)
    surface = plane(u, v)
    centroid = (
        np.stack(
            [
                ((u - intrinsics.cx) / intrinsics.fx * surface * footprint).sum(1),
                ((v - intrinsics.cy) / intrinsics.fy * surface * footprint).sum(1),
                (surface * footprint).sum(1),
            ],
            1,
        )
        / area[:, None]
    )

    residual = dz - b[:, None] * du - c[:, None] * dv
    pairs = (used[:, :-1] & used[:, 1:]).reshape(n, -1)  # a sample and the next one
    pairs[:, side - 1 :: side] = False  # ... on the same grid row
    steps = np.where(pairs, residual[:, 1:] - residual[:, :-1], 0.0)
    noise_var = (steps * steps).sum(1) / np.maximum(pairs.sum(1), 1) / 2  # each difference carries two noises
    thickness = np.sqrt(12 * np.maximum((residual * residual).sum(1) / k - noise_var, 0.0))

    # the 2D box's corners (pixel edges: pixel i spans i - 0.5 .. i + 0.5) on the plane
    corner_u = boxes[:, [0, 2, 0, 2]] - 0.5
    corner_v = boxes[:, [1, 1, 3, 3]] - 0.5
    corner_z = plane(corner_u, corner_v)
    corner_x = (corner_u - intrinsics.cx) / intrinsics.fx * corner_z
    corner_y = (corner_v - intrinsics.cy) / intrinsics.fy * corner_z
    low = np.stack([corner_x.min(1), corner_y.min(1), corner_z.min(1) - thickness / 2], 1)
    high = np.stack([corner_x.max(1), corner_y.max(1), corner_z.max(1) + thickness / 2], 1)
    keep = valid[:, None]
    return Instances3D(
        valid=valid,
        centroid=np.where(keep, centroid, 0.0),
        center=np.where(keep, (low + high) / 2, 0.0),
        size=np.where(keep, high - low, 0.0),
        covariance=np.where(valid[:, None, None], covariance, 0.0),
        pixels_read=read.astype(np.int64),
        points_used=count.astype(np.int64),
        points=[points[i][used[i]].astype(np.float32) for i in range(n)] if with_points else None,
    )
