"""The frame's antialiased bilinear resize to the encoder's size on the host, exactly as torch's CPU kernel computes it
in float32, 1.6-3x faster (2-core Intel VM, 1280x720 and 1920x1080 frames to 112 px).

transformers' SAM 3 image processor resizes with torchvision, which on a CPU where torch does not dispatch its AVX2
kernels (an AVX512 machine, ARM) resizes the uint8 frame in float32: ``F.interpolate(..., antialias=True)``. That
kernel is separable, a pass along the rows (each output column a weighted sum over a window of source columns) and
then one down the columns, and sums every window in a scalar loop, one output at a time. This module computes the
same sums for 16 rows x 3 channels at once (vectorized), on numba's threads.

The sums are torch's, bit for bit:

- the windows and their weights are torch's own, read once per size through its kernel: an identity matrix passed
  through it gives the weights, one with NaN on its diagonal the windows (zero weights at a window's end included);
- each window is summed in the order torch's build compiles its loop to: the first product, then the next taps with
  a separate multiply and add in groups of four, then the remaining (n - 1) % 4 taps as fused multiply-adds;
- once per frame shape a seeded random frame goes through both, and every value must be equal. Where one is not
  (another torch build, a CPU without the FMA instruction), ``resize_frame`` returns None and the caller resizes
  with torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

from .host_kernels import fused_multiply_add, host_passes, njit_no_refcount, numba_threads

log = logging.getLogger(__name__)

F32 = np.float32
ROWS_PER_BLOCK = 16  # source rows summed at once: 48 lanes (16 rows x 3 channels), three AVX-512 registers
SEPARATE_GROUP = 4  # taps torch's compiled loop adds with a separate multiply and add per group (the rest: fused)
AXIS_CHUNK = 512  # identity rows per torch call when reading an axis' windows and weights (bounds the memory)


@dataclass(frozen=True)
class ResizeAxis:
    """One axis of torch's antialiased bilinear resize from ``in_size`` to ``out_size`` samples."""

    first: np.ndarray  # (out,) int64: first source index of each output's window
    size: np.ndarray  # (out,) int64: the window's length
    taps: np.ndarray  # (out, longest window) float32: the window's weights, zero past its length


def _along_rows(rows: torch.Tensor, out_size: int) -> np.ndarray:
    """torch's antialiased bilinear resize of each row of ``rows`` (R, in) to ``out_size`` samples: (R, out)."""
    resized = F.interpolate(
        rows[None, None], size=(rows.shape[0], out_size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0, 0].numpy()


@lru_cache(maxsize=16)
def resize_axis(in_size: int, out_size: int) -> ResizeAxis:
    """The windows and weights of torch's resize along one axis, read from torch's kernel itself: source row ``x``
    of an identity matrix comes out as every output's weight on ``x`` (its one product is exact, the rest add
    zeros), and with NaN on the diagonal as NaN in every output whose window holds ``x``."""
    weights = np.empty((in_size, out_size), F32)
    inside = np.empty((in_size, out_size), np.bool_)
    for start in range(0, in_size, AXIS_CHUNK):
        rows = min(AXIS_CHUNK, in_size - start)
        identity = torch.zeros(rows, in_size)
        diagonal = (torch.arange(rows), start + torch.arange(rows))
        identity[diagonal] = 1.0
        weights[start : start + rows] = _along_rows(identity, out_size)
        identity[diagonal] = float("nan")
        inside[start : start + rows] = np.isnan(_along_rows(identity, out_size))
    weights, inside = weights.T, inside.T
    first, size = inside.argmax(axis=1), inside.sum(axis=1)
    taps = np.zeros((out_size, max(int(size.max()), 1)), F32)
    for j in range(out_size):
        taps[j, : size[j]] = weights[j, first[j] : first[j] + size[j]]
    return ResizeAxis(first.astype(np.int64), size.astype(np.int64), taps)


def prepare_frame_resize() -> None:
    """Compile the resize's loops (or load them from numba's cache) now, not on a camera's first frame."""
    normalized_frame(np.zeros((2 * ROWS_PER_BLOCK, 24, 3), np.uint8), 8)


def resize_frame(image: np.ndarray, size: int) -> np.ndarray | None:
    """(H, W, 3) uint8 -> (size, size, 3) float32: the values of torch's ``F.interpolate`` of the float image
    (bilinear, antialiased, align_corners=False), bit for bit; None where this torch build computes them otherwise
    (checked once per frame shape)."""
    h, w = int(image.shape[0]), int(image.shape[1])
    if not resize_matches_torch(h, w, size):
        return None
    return _resize(np.ascontiguousarray(image), size)


def normalized_frame(image: np.ndarray, size: int) -> np.ndarray | None:
    """(H, W, 3) uint8 -> (3, size, size) float32: ``resize_frame``'s values clamped to [0, 255], rounded to uint8
    levels and normalized to [-1, 1] ((x - 127.5) / 127.5), as the image processor's float path does it with tensor
    operations, bit for bit, in one pass; None where ``resize_frame`` is."""
    values = resize_frame(image, size)
    if values is None:
        return None
    pixels = np.empty((3, size, size), F32)
    _normalize(values, pixels)
    return pixels


@njit(cache=True, nogil=True)
def _normalize(values, pixels):
    """``pixels[c, i, j]`` = (round(clamp(values[i, j, c], 0, 255)) - 127.5) / 127.5 in float32 (round: half to
    even, as torch's)."""
    size = values.shape[0]
    low, high, half = F32(0), F32(255), F32(127.5)
    for i in range(size):
        for j in range(size):
            for c in range(3):
                v = min(max(values[i, j, c], low), high)
                pixels[c, i, j] = (np.rint(v) - half) / half


@lru_cache(maxsize=16)
def resize_matches_torch(height: int, width: int, size: int) -> bool:
    """Whether ``_resize`` gives torch's values for frames of this shape (checked once on a seeded random frame: a
    different order of the sums shows on a large share of the values)."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    expected = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    ours = torch.from_numpy(_resize(image, size)).permute(2, 0, 1)[None]
    same = torch.equal(ours.view(torch.int32), expected.view(torch.int32))
    if not same:
        log.warning(
            "torch's antialiased resize of this build sums differently from the host kernel for %dx%d frames: "
            "those are resized by torch (slower, same result)",
            width,
            height,
        )
    return same


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """The two passes of torch's resize of a C-contiguous (H, W, 3) uint8 frame: (size, size, 3) float32."""
    h, w = image.shape[:2]
    ax, ay = resize_axis(w, size), resize_axis(h, size)
    across = np.empty((h, size * 3), F32)  # the first pass: each source row resized along its columns
    out = np.empty((size, size * 3), F32)
    axes = (ax.first, ax.size, ax.taps, ay.first, ay.size, ay.taps)
    with numba_threads() as held:
        # one thread, or another camera's host kernel holds numba's threads: all in one pass, here
        passes = max(1, min(host_passes(), -(-h // ROWS_PER_BLOCK))) if held else 1
        lanes = (np.empty((passes, w, 3 * ROWS_PER_BLOCK), np.uint8), np.empty((passes, 3 * ROWS_PER_BLOCK), F32))
        if passes > 1:
            _passes_at_once(image, axes, lanes, across, out)
        else:
            _across_pass(image, 0, 1, axes, lanes, across)
            _down_pass(0, 1, axes, across, out)
    return out.reshape(size, size, 3)


@njit_no_refcount
def _window_sums(src, first, n, taps, acc, lanes):
    """``acc[:lanes]`` = the sums over rows ``first .. first + n - 1`` of ``src`` weighted by ``taps``, each lane
    in the order torch's compiled loop adds: the first product, grouped separate multiply-adds, fused ones last."""
    w0 = taps[0]
    for lane in range(lanes):
        acc[lane] = F32(src[first, lane]) * w0
    grouped = 1 + (n - 1) // SEPARATE_GROUP * SEPARATE_GROUP
    for k in range(1, grouped):
        wk = taps[k]
        for lane in range(lanes):
            acc[lane] = acc[lane] + F32(src[first + k, lane]) * wk
    for k in range(grouped, n):
        wk = taps[k]
        for lane in range(lanes):
            acc[lane] = fused_multiply_add(F32(src[first + k, lane]), wk, acc[lane])


@njit_no_refcount
def _across_pass(image, p, passes, axes, lanes, across):
    """Pass ``p`` of ``passes`` of the resize along the rows: its blocks of ``ROWS_PER_BLOCK`` source rows, each
    block's columns laid out as lanes (row, channel) first, so that a window's sum runs over all of them at once."""
    h, w = image.shape[0], image.shape[1]
    first, size, taps = axes[0], axes[1], axes[2]
    columns, acc = lanes[0][p], lanes[1][p]
    blocks = (h + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    for b in range(p * blocks // passes, (p + 1) * blocks // passes):
        y0 = b * ROWS_PER_BLOCK
        rows = min(ROWS_PER_BLOCK, h - y0)
        for x in range(w):  # column-major: the block's lanes of a column are written together
            for r in range(rows):
                for c in range(3):
                    columns[x, r * 3 + c] = image[y0 + r, x, c]
        for j in range(first.shape[0]):
            _window_sums(columns, first[j], size[j], taps[j], acc, rows * 3)
            for r in range(rows):
                for c in range(3):
                    across[y0 + r, j * 3 + c] = acc[r * 3 + c]


@njit_no_refcount
def _down_pass(p, passes, axes, across, out):
    """Pass ``p`` of ``passes`` of the resize down the columns: its output rows, each a window's sum of rows of
    ``across`` (lanes: output column, channel)."""
    first, size, taps = axes[3], axes[4], axes[5]
    rows = first.shape[0]
    for i in range(p * rows // passes, (p + 1) * rows // passes):
        _window_sums(across, first[i], size[i], taps[i], out[i], out.shape[1])


@njit(cache=True, nogil=True, parallel=True)
def _passes_at_once(image, axes, lanes, across, out):
    """Both resize passes, each cut into passes run at once on numba's threads."""
    passes = lanes[1].shape[0]
    for p in prange(passes):
        _across_pass(image, p, passes, axes, lanes, across)
    for p in prange(passes):
        _down_pass(p, passes, axes, across, out)
