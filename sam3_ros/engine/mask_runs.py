"""The published masks from low-res logits, computed inside each object's box as COCO run lengths.

``output_masks`` gives exactly what the dense definition gives (``dense_output_masks``: bilinear upsampling
to the source size, ``> 0``, tight boxes, per-concept pixel non-overlap, RLE of every mask), without the
(objects x image) intermediates:

- Bilinear upsampling (align_corners=False) is separable in its index structure: the output rows whose
  upper source row is ``r`` form band ``r``, and every pixel of a (band, column) pair is computed from the
  two horizontally interpolated values ``T0``, ``T1`` of source rows ``r`` and ``r + 1`` at that column.
  Along the band the value is monotone (``T0`` and ``T1`` have fixed signs, the weights move one way), so
  the mask on a (band, column) pair is one run touching the band's start or end: a prefix, a suffix, all or
  nothing. The work is per (band, column) inside the object's box, not per pixel.
- The arithmetic is torch's CPU kernel's, bit for bit (indices, weights, and the fused multiply-adds its
  compiler emits), so ``> 0`` decides every pixel as ``F.interpolate`` does. A run's end comes from the
  linear zero crossing of the band; any pair whose crossing lies within rounding distance of a row is
  evaluated row by row in exact float32 arithmetic.
- Pixel non-overlap within a concept (highest score wins, ties to the lower index, only positive scores
  keep pixels) keeps runs runs: what higher-ranked masks claim on a (band, column) pair is a prefix and a
  suffix, so every kept mask is again one run per pair.
- RLE: runs sorted in column-major order, touching runs merged, background runs by difference.

Where that exactness is not guaranteed, the dense definition runs instead, on the whole frame: outputs
with height + width <= 128 (torch uses another kernel there), a torch build whose arithmetic differs from
the emulation (checked once per size against ``F.interpolate``), logits below 2^-60 in magnitude (the
monotonicity argument needs products that do not underflow), and CUDA tensors (the dense kernels run there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..codec.rle import RleMasks
from ..kernels.ops import exclusive_masks, rle_encode
from .mask_ops import logits_to_masks, masks_to_boxes

log = logging.getLogger(__name__)

F32, F64 = np.float32, np.float64
SMALL_OUTPUT = 128  # torch's CPU kernel switches to its channels-last loop at height + width <= this
TINY_LOGIT = 2.0**-60  # non-zero logits below this go to the dense definition
TINY_VALUE = 2.0**-100  # interpolated values below this (non-zero) are evaluated row by row
CROSSING_MARGIN = 2.0**-20  # source-coordinate distance of a zero crossing from a row that needs rows
_LOW29, _HALF29 = (1 << 29) - 1, 1 << 28  # float64 bits below float32 precision, and a float32 tie


class _NotRuns(Exception):
    """A (band, column) pair whose exact mask is not a prefix or suffix (only with underflowing values)."""


def fma32(a, b, c) -> np.ndarray:
    """float32 ``a * b + c`` with one rounding (a fused multiply-add), for float32 inputs of any shape.

    The product is exact in float64; the sum is rounded to odd there (which keeps the information a
    second rounding to float32 needs), then rounded to float32."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    c64 = np.asarray(c, F32).astype(F64)
    p = a.astype(F64) * b
    s = p + c64
    back = s - p
    error = (p - (s - back)) + (c64 - back)  # s + error == p + c exactly (TwoSum)
    bits = s.view(np.int64)
    odd = (error != 0) & ((bits & 1) == 0)
    if np.count_nonzero(odd):
        toward = np.where((error > 0) == (s > 0), 1, -1)
        s = np.where(odd, (bits + toward).view(F64), s)
    return s.astype(F32)


def _fma32_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``fma32(a, b, c)`` for (R, C) ``a`` and ``c`` and a (C,) ``b``: one float64 rounding, then float32; only
    the values a second rounding could have changed (a float32 tie after an inexact sum, or tiny ones) go
    through ``fma32``."""
    b64 = b.astype(F64)
    p = a.astype(F64)
    p *= b64
    p += c
    out = p.astype(F32)
    risky = (p.view(np.int64) & _LOW29) == _HALF29
    risky |= np.abs(p) < 2.0**-125
    if np.count_nonzero(risky):
        k = np.flatnonzero(risky)
        ak, bk, ck = a.reshape(-1)[k], b64[k % len(b)], c.reshape(-1)[k].astype(F64)
        product, s = ak * bk, p.reshape(-1)[k]
        back = s - product
        inexact = ((product - (s - back)) + (ck - back)) != 0
        inexact |= np.abs(s) < 2.0**-125
        if np.count_nonzero(inexact):
            k = k[inexact]
            out.reshape(-1)[k] = fma32(ak[inexact], bk[inexact].astype(F32), ck[inexact].astype(F32))
    return out


@dataclass(frozen=True)
class UpsampleAxis:
    """One axis of torch's bilinear upsampling (align_corners=False) from ``in_size`` to ``out_size``."""

    i0: np.ndarray  # (out,) int64: lower source index of each output index
    i1: np.ndarray  # (out,) int64: upper source index
    l0: np.ndarray  # (out,) float32: weight of i0
    l1: np.ndarray  # (out,) float32: weight of i1
    source: np.ndarray  # (out + 2,) float64: source coordinates, with -inf before and +inf after
    start: np.ndarray  # (in + 1,) int32: first output index of each band (i0 == r); entry ``in`` is empty
    end: np.ndarray  # (in + 1,) int32: one past its last
    ratio: float  # out / in


@lru_cache(maxsize=32)
def upsample_axis(in_size: int, out_size: int) -> UpsampleAxis:
    """Indices and weights as torch computes them: scale = in / out in float32, source = scale * (i + 0.5) - 0.5
    (one rounding), clamped at 0; weights 1 - l1 and l1 in float32."""
    scale = np.full(out_size, F32(in_size) / F32(out_size), F32)
    source = np.maximum(fma32(scale, np.arange(out_size, dtype=F32) + F32(0.5), np.full(out_size, -0.5, F32)), F32(0))
    i0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    l1 = np.clip(source - i0.astype(F32), F32(0), F32(1)).astype(F32)
    bands = np.arange(in_size + 1)
    return UpsampleAxis(
        i0=i0,
        i1=i0 + (i0 < in_size - 1),
        l0=(F32(1) - l1).astype(F32),
        l1=l1,
        source=np.concatenate(([-np.inf], source.astype(F64), [np.inf])),
        start=np.append(np.searchsorted(i0, bands[:-1], "left"), out_size).astype(np.int32),
        end=np.append(np.searchsorted(i0, bands[:-1], "right"), out_size).astype(np.int32),
        ratio=out_size / in_size,
    )


def upsample_exact(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) float32 logits bilinearly upsampled to ``size`` with the arithmetic ``output_masks`` assumes:
    per row, ``fma(x[i0], l0, x[i1] * l1)`` across, then the same down the rows. Dense: for checks."""
    ay, ax = upsample_axis(logits.shape[1], size[0]), upsample_axis(logits.shape[2], size[1])
    across = fma32(logits[:, :, ax.i0], ax.l0, logits[:, :, ax.i1] * ax.l1)
    return fma32(across[:, ay.i0], ay.l0[:, None], across[:, ay.i1] * ay.l1[:, None])


@lru_cache(maxsize=32)
def emulation_matches_torch(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether this torch build's ``F.interpolate`` computes what ``upsample_exact`` does for these sizes (checked
    once per size on seeded random logits: a different arithmetic shows on a large share of the values)."""
    logits = np.random.default_rng(0).standard_normal((1, *in_size)).astype(F32)
    torch_values = F.interpolate(
        torch.from_numpy(logits)[:, None], size=out_size, mode="bilinear", align_corners=False
    )[:, 0].numpy()
    same = np.array_equal(torch_values.view(np.int32), upsample_exact(logits, out_size).view(np.int32))
    if not same:
        log.warning(
            "bilinear upsampling of this torch build differs from its emulation for %s -> %s: masks of "
            "that size are computed densely (slower, same result)",
            in_size,
            out_size,
        )
    return same


def dense_output_masks(
    logits: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, RleMasks]:
    """The definition of ``output_masks``: upsample every mask to ``size``, boxes of those masks, per-group
    pixel non-overlap (``kernels.ops.exclusive_masks``), RLE (``kernels.ops.rle_encode``). Any device."""
    masks = logits_to_masks(logits, size)
    boxes = masks_to_boxes(masks)
    masks = exclusive_masks(masks, scores, groups)
    return boxes, RleMasks(rle_encode(masks) if len(masks) else [], size)


def output_masks(
    logits: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, RleMasks]:
    """Boxes (N, 4) float32 (xyxy, ends exclusive, zeros for an empty mask) of the low-res mask ``logits``
    (N, h, w) upsampled to ``size`` (H, W) and thresholded at 0, and those masks made pixel-exclusive within
    each group (``groups`` (N,); ``scores`` (N,) rank them, see ``kernels.reference.exclusive_masks``) as RLE.
    Exactly ``dense_output_masks``; on the host inside each object's box (see the module docstring)."""
    h, w = int(logits.shape[1]), int(logits.shape[2])
    host = logits.device.type == "cpu" and sum(size) > SMALL_OUTPUT and emulation_matches_torch((h, w), size)
    if host:
        values = logits.detach().float().numpy()
        if not np.count_nonzero((values != 0) & (np.abs(values) < TINY_LOGIT)):
            try:
                boxes, counts = _host_output(values, scores.detach().float().numpy(), groups.detach().numpy(), size)
                return torch.from_numpy(boxes), RleMasks(counts, size)
            except _NotRuns:
                pass
    return dense_output_masks(logits, scores, groups, size)


def _host_output(
    logits: np.ndarray, scores: np.ndarray, groups: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    n, h, w = logits.shape
    ay, ax = upsample_axis(h, size[0]), upsample_axis(w, size[1])
    boxes = np.zeros((n, 4), F32)
    counts = [np.array([size[0] * size[1]], np.uint32) for _ in range(n)]
    first_band, bands, first_col, cols = _candidate_boxes(logits, ay, ax)
    live = np.flatnonzero(bands > 0)
    if not len(live):
        return boxes, counts
    # objects side by side in chunks of similar height (bands are padded to a chunk's tallest)
    live = live[np.argsort(bands[live], kind="stable")]
    chunks, start = [], 0
    for k in range(1, len(live) + 1):
        if k == len(live) or bands[live[k]] > 2 * bands[live[start]]:
            chunks.append(_Chunk(logits, ay, ax, np.sort(live[start:k]), first_band, bands, first_col, cols))
            start = k
    placed = {}
    for chunk in chunks:
        boxes[chunk.ids] = chunk.boxes()
        for k, i in enumerate(chunk.ids):
            placed[int(i)] = (chunk, int(chunk.col_start[k]), int(chunk.col_start[k + 1]))
    _exclusive(placed, scores, groups, first_band, bands, first_col, cols, ay)
    for chunk in chunks:
        for i, c in zip(chunk.ids, chunk.counts(size)):
            counts[i] = c
    return boxes, counts


def _candidate_boxes(logits: np.ndarray, ay: UpsampleAxis, ax: UpsampleAxis):
    """Per object: first band, number of bands, first column, number of columns of the output region that can
    hold a positive pixel (one of its source samples is positive); 0 bands for none."""
    n, h, w = logits.shape
    positive = logits > 0
    rows, cols = positive.any(2), positive.any(1)
    some = rows.any(1)
    top, bottom = rows.argmax(1), h - 1 - rows[:, ::-1].argmax(1)
    left, right = cols.argmax(1), w - 1 - cols[:, ::-1].argmax(1)
    y0, y1 = ay.i1.searchsorted(top, "left"), ay.i0.searchsorted(bottom, "right")
    x0, x1 = ax.i1.searchsorted(left, "left"), ax.i0.searchsorted(right, "right")
    some &= (y0 < y1) & (x0 < x1)
    first_band = np.where(some, ay.i0[np.minimum(y0, len(ay.i0) - 1)], 0)
    last_band = np.where(some, ay.i0[np.maximum(y1 - 1, 0)], -1)
    return first_band, last_band - first_band + 1, np.where(some, x0, 0), np.where(some, x1 - x0, 0)


class _Chunk:
    """Some objects' runs: their columns side by side (C in all), their bands padded to the tallest (NB).

    ``lo``/``hi`` (NB, C) int32: output rows [lo, hi) of the mask on each (band, column) pair (lo == hi:
    none); ``band_start``/``band_end`` the pairs' band rows."""

    def __init__(self, logits, ay: UpsampleAxis, ax: UpsampleAxis, ids, first_band, bands, first_col, cols):
        n, h, w = logits.shape
        self.ids, self.cols = ids, cols[ids]
        self.col_start = np.concatenate(([0], np.cumsum(self.cols)))
        owner = np.repeat(np.arange(len(ids)), self.cols)
        self.x = (np.arange(self.col_start[-1]) - self.col_start[owner]) + first_col[ids][owner]
        tallest = int(bands[ids].max())
        step = np.arange(tallest + 1)[:, None]
        band0 = first_band[ids][owner]
        rows = np.minimum(band0[None, :] + step, h - 1)  # source rows; the last band reads its own row twice
        flat = logits.reshape(-1)
        base = (ids[owner] * (h * w)).astype(np.int64) + rows * w
        upper = flat[base + ax.i1[self.x]]
        upper *= ax.l1[self.x]
        across = _fma32_rows(flat[base + ax.i0[self.x]], ax.l0[self.x], upper)  # (NB + 1, C)
        t0, t1 = across[:-1], across[1:]
        valid = step[:-1] < bands[ids][owner][None, :]
        band = np.minimum(band0[None, :] + step[:-1], h)  # padding: band h, which holds no rows
        start, end = ay.start[band], ay.end[band]
        p0, p1 = (t0 > 0) & valid, (t1 > 0) & valid
        mixed = p0 != p1
        # the zero crossing of t0 (1 - l) + t1 l, in source coordinates, and the first row at or after it
        t0_64 = t0.astype(F64)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = t0_64 / (t0_64 - t1)
        crossing += band
        row = crossing + 0.5
        row *= ay.ratio
        row -= 0.5
        np.ceil(row, out=row)
        np.fmax(row, start, out=row)  # fmax/fmin also replace the NaN of pairs without a crossing
        np.fmin(row, end, out=row)
        cut = row.astype(np.int32)
        with np.errstate(invalid="ignore"):
            below = ay.source[cut]  # the row before the cut (padded: index + 1 - 1)
            below -= crossing
            above = ay.source[cut + 1]
            above -= crossing
        near = below >= -CROSSING_MARGIN
        near |= above <= CROSSING_MARGIN
        near &= mixed
        tiny = (np.abs(across) < TINY_VALUE) & (across != 0)
        if np.count_nonzero(tiny):
            near |= (tiny[:-1] | tiny[1:]) & valid
        cut -= start
        self.lo = cut * (mixed & p1)
        self.lo += start
        self.hi = cut * (mixed & p0)
        self.hi += start
        self.hi += (end - start) * p1
        if np.count_nonzero(near):
            k, c = np.nonzero(near)
            self.lo[k, c], self.hi[k, c] = _rows_one_by_one(logits, ay, ax, ids[owner[c]], band[k, c], self.x[c])
        self.band_start, self.band_end = start, end

    def boxes(self) -> np.ndarray:
        """(m, 4) float32 tight boxes of the objects' masks (zeros for none)."""
        some = self.hi > self.lo
        cols = some.any(0)
        big = np.iinfo(np.int32).max
        starts = self.col_start[:-1]
        x0 = np.minimum.reduceat(np.where(cols, self.x, big), starts)
        x1 = np.maximum.reduceat(np.where(cols, self.x, -1), starts) + 1
        y0 = np.minimum.reduceat(np.where(some, self.lo, big).min(0), starts)
        y1 = np.maximum.reduceat(np.where(some, self.hi, -1).max(0), starts)
        out = np.stack([x0, y0, x1, y1], 1).astype(F32)
        out[x0 == big] = 0
        return out

    def counts(self, size: tuple[int, int]) -> list[np.ndarray]:
        """COCO RLE counts of the objects' (current) runs."""
        height, width = size
        pixels = height * width
        m = len(self.ids)
        owner = np.repeat(np.arange(m), self.cols)
        # flat column-major index, each object in its own range (pixels + 1 apart: no run spans two)
        offset = (owner.astype(np.int64) * (pixels + 1) + self.x.astype(np.int64) * height)[:, None]
        keep = (self.hi > self.lo).T
        starts, ends = (self.lo.T + offset)[keep], (self.hi.T + offset)[keep]
        if len(starts):  # runs that touch (across a band or a column edge) are one run
            new = np.ones(len(starts), bool)
            new[1:] = starts[1:] != ends[:-1]
            last = np.ones(len(starts), bool)
            last[:-1] = new[1:]
            starts, ends = starts[new], ends[last]
        obj = starts // (pixels + 1)
        runs = np.bincount(obj, minlength=m)
        # per object: its range start, its run starts and ends, its range end; counts are the differences
        edges = np.empty(2 * len(starts) + 2 * m, np.int64)
        j = np.arange(len(starts))
        edges[2 * j + 2 * obj + 1], edges[2 * j + 2 * obj + 2] = starts, ends
        first = 2 * np.concatenate(([0], np.cumsum(runs)[:-1])) + 2 * np.arange(m)
        base = np.arange(m, dtype=np.int64) * (pixels + 1)
        edges[first], edges[first + 2 * runs + 1] = base, base + pixels
        steps = np.diff(edges).astype(np.uint32)
        out = []
        for i in range(m):
            c = steps[first[i] : first[i] + 2 * runs[i] + 1]
            out.append(c[:-1] if len(c) > 1 and c[-1] == 0 else c)  # no empty background run at the end
        return out


def _rows_one_by_one(logits, ay: UpsampleAxis, ax: UpsampleAxis, obj, band, x) -> tuple[np.ndarray, np.ndarray]:
    """Exact [lo, hi) of some (object, band, column) pairs, every row of the band evaluated; ``_NotRuns`` if one
    is not a prefix or suffix of its band."""
    h = logits.shape[1]
    across = [
        fma32(logits[obj, r, ax.i0[x]], ax.l0[x], logits[obj, r, ax.i1[x]] * ax.l1[x])
        for r in (band, np.minimum(band + 1, h - 1))
    ]
    start, end = ay.start[band], ay.end[band]
    longest = int((end - start).max())
    offsets = np.arange(longest)
    inside = offsets < (end - start)[:, None]
    rows = np.minimum(start[:, None] + offsets, end[:, None] - 1)
    positive = fma32(across[0][:, None], ay.l0[rows], across[1][:, None] * ay.l1[rows]) > 0
    positive &= inside
    count = positive.sum(1)
    first = np.where(count > 0, positive.argmax(1), 0)
    one_run = (positive == (inside & (offsets >= first[:, None]) & (offsets < (first + count)[:, None]))).all(1)
    lo = start + first
    touches = (count == 0) | (lo == start) | (lo + count == end)
    if not (one_run & touches).all():
        raise _NotRuns
    return np.where(count > 0, lo, start).astype(np.int32), np.where(count > 0, lo + count, start).astype(np.int32)


def _exclusive(placed: dict, scores, groups, first_band, bands, first_col, cols, ay: UpsampleAxis) -> None:
    """Make the placed objects' runs pixel-exclusive within their group, in place: objects ranked by score
    (ties: lower index); on each (band, column) pair the higher-ranked masks claim a prefix and a suffix of the
    band, and a lower-ranked mask keeps what is left of its run. Objects of score <= 0 keep nothing."""
    ids = np.array(sorted(placed))
    for i in ids[scores[ids] <= 0]:
        chunk, c0, c1 = placed[int(i)]
        chunk.hi[:, c0:c1] = chunk.lo[:, c0:c1]
    same = groups[ids][:, None] == groups[ids][None, :]
    b0, b1 = first_band[ids], first_band[ids] + bands[ids]
    x0, x1 = first_col[ids], first_col[ids] + cols[ids]
    overlap = same & (b0[:, None] < b1[None, :]) & (b0[None, :] < b1[:, None])
    overlap &= (x0[:, None] < x1[None, :]) & (x0[None, :] < x1[:, None])
    np.fill_diagonal(overlap, False)
    involved = ids[overlap.any(1)]  # objects whose region meets another's of the same group
    claims = {}
    for i in involved[np.lexsort((involved, -scores[involved], groups[involved]))]:
        group = int(groups[i])
        if group not in claims:  # claimed prefix ends and suffix starts over the group's region
            members = involved[groups[involved] == group]
            top, bottom = int(first_band[members].min()), int((first_band[members] + bands[members]).max())
            left, right = int(first_col[members].min()), int((first_col[members] + cols[members]).max())
            claims[group] = (
                top,
                left,
                np.repeat(ay.start[top:bottom, None], right - left, axis=1),
                np.repeat(ay.end[top:bottom, None], right - left, axis=1),
            )
        top, left, prefix_end, suffix_start = claims[group]
        chunk, c0, c1 = placed[int(i)]
        k, r, x = int(bands[i]), int(first_band[i]) - top, int(first_col[i]) - left
        prefix, suffix = prefix_end[r : r + k, x : x + c1 - c0], suffix_start[r : r + k, x : x + c1 - c0]
        lo, hi = chunk.lo[:k, c0:c1], chunk.hi[:k, c0:c1]
        some = hi > lo
        kept_lo, kept_hi = np.maximum(lo, prefix), np.minimum(hi, suffix)
        np.maximum(prefix, hi * (some & (lo == chunk.band_start[:k, c0:c1])), out=prefix)
        np.minimum(suffix, suffix - (suffix - lo) * (some & (hi == chunk.band_end[:k, c0:c1])), out=suffix)
        if scores[i] > 0:
            lo[...] = kept_lo
            hi[...] = np.maximum(kept_hi, kept_lo)
