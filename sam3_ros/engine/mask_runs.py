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
  compiler emits: the CPU's own FMA instruction where it has one, checked once by ``hardware_fma``, else an
  exact emulation), so ``> 0`` decides every pixel as ``F.interpolate`` does. Most pairs need no row at all:
  two source values of one sign give all or nothing. On the others the run's end is guessed from the linear
  zero crossing and settled by the exact signs of the rows on either side of it.
- Pixel non-overlap within a concept (highest score wins, ties to the lower index, only positive scores
  keep pixels) keeps runs runs: what higher-ranked masks claim on a (band, column) pair is a prefix and a
  suffix, so every kept mask is again one run per pair. A pair that higher-ranked masks took whole is not
  computed at all: it keeps nothing and claims nothing new. An object with such pairs gets its box (of its
  own mask, before claims) from its outermost set bands and columns instead.
- RLE: runs come out in column-major order (columns, then bands), touching runs merged as they are written.

One compiled loop (numba, without reference counting: ``host_kernels.njit_no_refcount``) does all of it per object,
in rank order, in a single pass over the object's (band, column) pairs: the work grows with the objects' area in
the frame, with no (objects x image) arrays. Columns do not depend on each other (the claims are per pair), so
with torch's intra-op threads at 2 or more the frame's columns are cut into ranges of even work, a few passes per
thread, run at once on numba's threads (TBB's where the ``tbb`` package is installed, else numba's workqueue;
one kernel at a time, see ``host_kernels``, the others meanwhile in their own threads); a last serial step joins each
object's runs across the cuts into its RLE and settles its box.

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
from numba import njit, prange

from ..codec.rle import RleMasks
from ..kernels.ops import exclusive_masks, rle_encode
from .host_kernels import fused_multiply_add, host_passes, njit_no_refcount, numba_threads
from .mask_ops import logits_to_masks, masks_to_boxes

log = logging.getLogger(__name__)

F32, F64 = np.float32, np.float64
SMALL_OUTPUT = 128  # torch's CPU kernel switches to its channels-last loop at height + width <= this
TINY_LOGIT = 2.0**-60  # non-zero logits below this go to the dense definition
TINY_VALUE = 2.0**-100  # interpolated values below this (non-zero) are evaluated row by row


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


@dataclass(frozen=True)
class UpsampleAxis:
    """One axis of torch's bilinear upsampling (align_corners=False) from ``in_size`` to ``out_size``."""

    i0: np.ndarray  # (out,) int64: lower source index of each output index
    i1: np.ndarray  # (out,) int64: upper source index
    l0: np.ndarray  # (out,) float32: weight of i0
    l1: np.ndarray  # (out,) float32: weight of i1
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


def prepare_output_masks() -> None:
    """Compile ``output_masks``' loops (or load them from numba's cache) and start numba's threading layer now, so
    that a camera's first frame does not wait for them: two objects of one concept, the second's pairs all taken by
    the first, over enough columns for two passes and over too few."""
    columns = MIN_PARALLEL_PAIRS // (2 * 16) + 1
    for size in ((640, columns), (120, 160)):
        output_masks(torch.ones(2, 16, 16), torch.ones(2), torch.zeros(2, dtype=torch.long), size)


def output_masks(
    logits: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, RleMasks]:
    """Boxes (N, 4) float32 (xyxy, ends exclusive, zeros for an empty mask) of the low-res mask ``logits``
    (N, h, w) upsampled to ``size`` (H, W) and thresholded at 0, and those masks made pixel-exclusive within
    each group (``groups`` (N,); ``scores`` (N,) rank them, see ``kernels.torch_ops.exclusive_masks``) as RLE.
    Exactly ``dense_output_masks``; on the host inside each object's box (see the module docstring)."""
    h, w = int(logits.shape[1]), int(logits.shape[2])
    host = logits.device.type == "cpu" and sum(size) > SMALL_OUTPUT and emulation_matches_torch((h, w), size)
    if host:
        values = logits.detach().float().numpy()
        done = _host_output(values, scores.detach().float().numpy(), groups.detach().numpy(), size)
        if done is not None:
            return torch.from_numpy(done[0]), RleMasks(done[1], size)
    return dense_output_masks(logits, scores, groups, size)


def _host_output(
    logits: np.ndarray, scores: np.ndarray, groups: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """``output_masks`` on the host (see the module docstring); None for logits below ``TINY_LOGIT`` (non-zero)
    and where a pair's mask is not one run (only with interpolated values that underflow)."""
    n, h, w = logits.shape
    logits = np.ascontiguousarray(logits, F32)
    extents, tiny = _positive_extents(logits, F32(TINY_LOGIT))
    if tiny:
        return None
    ay, ax = upsample_axis(h, size[0]), upsample_axis(w, size[1])
    first_band, bands, first_col, cols = _candidate_boxes(extents, ay, ax)
    order = np.lexsort((np.arange(n), -scores, groups))  # rank within each group: score, then index
    # per group of several objects: the region of the frame where its objects' claims are kept
    _, group_index, size_of = np.unique(groups, return_inverse=True, return_counts=True)
    group_index = group_index.reshape(-1)
    shared = (size_of[group_index] > 1) & (bands > 0)
    last_band, last_col = first_band + bands, first_col + cols
    regions = np.zeros((len(size_of), 4), np.int64)  # first band, first column, bands, columns
    for g in np.unique(group_index[shared]):
        members = shared & (group_index == g)
        top, left = first_band[members].min(), first_col[members].min()
        regions[g] = top, left, last_band[members].max() - top, last_col[members].max() - left
    active = (scores > 0) | shared  # objects with pixels to keep or claims to make; the others need only a box
    ranges = _column_ranges(first_col, cols, np.where(active, bands, 0), int(size[1]), host_passes())
    claim_offsets, prefix, suffix = _claims(regions, ay)
    capacity = 2 * bands.astype(np.int64) * cols + 2  # every pair one run, plus the first and last background runs
    offsets = np.concatenate(([0], np.cumsum(capacity)))
    counts = np.empty(int(offsets[-1]), np.uint32)
    # each pass writes an object's counts behind those of the passes before it: room for a run per pair
    in_pass = np.clip(np.minimum(first_col + cols, ranges[:, 1:2]) - np.maximum(first_col, ranges[:, 0:1]), 0, None)
    before = np.cumsum(in_pass, axis=0) - in_pass
    run_offsets = offsets[:-1] + 2 * np.where(active, bands, 0) * before  # (passes, objects)
    run_count, run_end = np.zeros(in_pass.shape, np.int64), np.zeros(in_pass.shape, np.int64)
    box_parts, skipped = np.zeros((*in_pass.shape, 4), np.int64), np.zeros(in_pass.shape, np.bool_)
    fixed = (
        logits,
        (scores > 0)[order],
        order,
        group_index[order].astype(np.int64),
        shared[order],
        regions,
        claim_offsets,
        prefix,
        suffix,
        first_band,
        bands,
        first_col,
        cols,
        ay.start,
        ay.end,
        ay.l0,
        ay.l1,
        F64(ay.ratio),
        ax.i0,
        ax.i1,
        ax.l0,
        ax.l1,
        int(size[0]),
        hardware_fma(),
        counts,
    )
    # each pass's scratch, a cache line apart from the next pass's: passes that share a line slow each other down
    across = np.empty((len(ranges), -(-(h + 1) // 16) * 16 + 16), F32)
    passes = (ranges, across, run_offsets, run_count, run_end, box_parts, skipped)
    # the passes share the claims, each in its own columns
    with numba_threads() as held:
        # one pass, or another camera's host kernel holds numba's threads: in this thread
        ok = _passes_at_once(fixed, passes) if held and len(ranges) > 1 else _passes_in_turn(fixed, passes)
    if not ok:
        return None
    lengths, boxes = np.zeros(n, np.int64), np.zeros((n, 4), F32)
    _stitch(int(size[0]) * int(size[1]), run_offsets, run_count, run_end, box_parts, counts, offsets, lengths, boxes)
    # where a pair went uncomputed, the box of the object's own mask comes from its outermost bands and columns
    own = np.flatnonzero((skipped.any(0) | ~active) & (bands > 0))
    if len(own):
        own_boxes = np.zeros((len(own), 4), np.int64)
        ys, xs = (ay.start, ay.end, ay.l0, ay.l1, F64(ay.ratio)), (ax.i0, ax.i1, ax.l0, ax.l1)
        if not _own_boxes(logits, own, first_band, bands, first_col, cols, ys, xs, hardware_fma(), own_boxes):
            return None
        boxes[own] = own_boxes
    return boxes, [counts[offsets[i] : offsets[i] + lengths[i]] for i in range(n)]


MIN_PARALLEL_PAIRS = 20_000  # less work than this (about 0.5 ms) runs in one pass: a second thread costs ~0.1 ms


def _claims(regions: np.ndarray, ay: UpsampleAxis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (``regions``: first band, first column, bands, columns), what higher-ranked masks cover of each
    (band, column) pair of its region, column by column (the order the passes visit them): [start, prefix) and
    [suffix, end), at first nothing. Returns the groups' offsets into the two flat arrays, and the arrays."""
    claim_offsets = np.concatenate(([0], np.cumsum(regions[:, 2] * regions[:, 3])))
    prefix, suffix = np.empty(int(claim_offsets[-1]), np.int32), np.empty(int(claim_offsets[-1]), np.int32)
    for g, (top, _, rows, columns) in enumerate(regions):
        claims = slice(claim_offsets[g], claim_offsets[g + 1])
        prefix[claims] = np.tile(ay.start[top : top + rows], columns)
        suffix[claims] = np.tile(ay.end[top : top + rows], columns)
    return claim_offsets, prefix, suffix


def _column_ranges(first_col: np.ndarray, cols: np.ndarray, bands: np.ndarray, width: int, passes: int) -> np.ndarray:
    """(P, 2) [first, end) output columns of up to ``passes`` passes: the frame's columns cut where the (band,
    column) pairs to compute (``bands`` of each object over its ``cols`` columns from ``first_col``) split evenly;
    one pass for little work."""
    per_column = np.zeros(width + 1, np.int64)
    weight = bands.astype(np.int64)
    np.add.at(per_column, first_col, weight)
    np.add.at(per_column, first_col + cols, -weight)
    work = np.cumsum(np.cumsum(per_column[:width]))  # pairs in columns [0, x]
    total = int(work[-1]) if width else 0
    if passes < 2 or total < MIN_PARALLEL_PAIRS:
        return np.array([[0, width]], np.int64)
    cuts = np.searchsorted(work, total * np.arange(1, passes) / passes) + 1
    edges = np.unique(np.concatenate(([0], np.minimum(cuts, width), [width])))
    return np.stack([edges[:-1], edges[1:]], axis=1).astype(np.int64)


@njit(cache=True, nogil=True)
def _positive_extents(logits, tiny):
    """Per object the first and last source row and column that hold a positive logit ((N, 4): top, bottom,
    left, right; -1 for none), and how many non-zero logits lie below ``tiny`` in magnitude. One pass: for 64
    objects of 288 x 288 (21 MB) its cost is the memory's bandwidth."""
    n, h, w = logits.shape
    extents = np.full((n, 4), -1, np.int64)
    tiny_count = np.int32(0)
    for i in range(n):
        for r in range(h):
            row = logits[i, r]
            positive = np.int32(0)
            for c in range(w):  # branch-free, so that the compiler can vectorize it
                v = row[c]
                positive += v > 0
                tiny_count += (abs(v) < tiny) & (v != 0)
            if positive:
                first, last = 0, w - 1
                while not row[first] > 0:
                    first += 1
                while not row[last] > 0:
                    last -= 1
                if extents[i, 0] < 0:
                    extents[i, 0], extents[i, 2], extents[i, 3] = r, first, last
                extents[i, 1] = r
                extents[i, 2] = min(extents[i, 2], first)
                extents[i, 3] = max(extents[i, 3], last)
    return extents, tiny_count


def _candidate_boxes(extents: np.ndarray, ay: UpsampleAxis, ax: UpsampleAxis):
    """Per object: first band, number of bands, first column, number of columns of the output region that can
    hold a positive pixel (one of its source samples is positive; ``extents`` from ``_positive_extents``); 0
    bands for none."""
    top, bottom, left, right = extents.T
    some = top >= 0
    y0, y1 = ay.i1.searchsorted(top, "left"), ay.i0.searchsorted(bottom, "right")
    x0, x1 = ax.i1.searchsorted(left, "left"), ax.i0.searchsorted(right, "right")
    some &= (y0 < y1) & (x0 < x1)
    first_band = np.where(some, ay.i0[np.minimum(y0, len(ay.i0) - 1)], 0)
    last_band = np.where(some, ay.i0[np.maximum(y1 - 1, 0)], -1)
    return first_band, last_band - first_band + 1, np.where(some, x0, 0), np.where(some, x1 - x0, 0)


@njit_no_refcount
def _fma32_scalar(a, b, c):
    """float32 ``a * b + c`` with one rounding (see ``fma32``), for float32 scalars."""
    p = np.float64(a) * np.float64(b)
    c64 = np.float64(c)
    s = p + c64
    back = s - p
    error = (p - (s - back)) + (c64 - back)  # s + error == p + c exactly (TwoSum)
    rounded = np.float32(s)
    below = s - np.float64(rounded)
    if error != 0.0 and below != 0.0:
        # only a tie between two float32 values can round the wrong way: then s + below is the other one, and
        # the exact sum lies beyond s on the side of the error
        other = s + below
        if np.float64(np.float32(other)) == other and (error > 0.0) == (below > 0.0):
            return np.float32(other)
    return rounded


@lru_cache(maxsize=1)
def hardware_fma() -> bool:
    """Whether ``fused_multiply_add`` rounds once, as ``fma32`` (checked once on values where one and two roundings
    differ, and on random ones): then the kernel uses it instead of the exact emulation, which is slower."""
    rng = np.random.default_rng(0)
    a, b, c = (np.append(rng.standard_normal(4096), v).astype(F32) for v in (1 + 2.0**-12, 1 + 2.0**-12, -1.0))
    fused = np.array([fused_multiply_add(x, y, z) for x, y, z in zip(a, b, c)], F32)
    return bool(np.array_equal(fused.view(np.int32), fma32(a, b, c).view(np.int32)))


@njit(cache=True, nogil=True, inline="always")
def _positive(t0, t1, l0, l1):
    """Whether the vertically interpolated value ``fma32(t0, l0, t1 * l1)`` is > 0 (its sign, decided in float64
    where the float32 rounding cannot change it)."""
    q = np.float32(np.float64(t1) * np.float64(l1))
    s = np.float64(t0) * np.float64(l0) + np.float64(q)
    if s <= 0.0:
        return False
    if s > 2.0**-140:
        return True
    return _fma32_scalar(t0, l0, q) > 0


@njit_no_refcount
def _band_run(t0, t1, band, start, end, l0, l1, ratio):
    """Output rows [lo, hi) where the mask is set on one (band, column) pair of across values ``t0``, ``t1``;
    lo == hi for none, -1 if the pair's mask is not one run touching the band's start or end."""
    if start == end:
        return start, start
    if (t0 != 0 and abs(t0) < TINY_VALUE) or (t1 != 0 and abs(t1) < TINY_VALUE):
        first, last = end, start  # products may underflow: every row, and the run checked
        for y in range(start, end):
            if _positive(t0, t1, l0[y], l1[y]):
                first, last = min(first, y), y + 1
        if first >= last:
            return start, start
        for y in range(first, last):
            if not _positive(t0, t1, l0[y], l1[y]):
                return -1, -1
        if first != start and last != end:
            return -1, -1
        return first, last
    if (t0 > 0) == (t1 > 0):  # the value keeps the sign of its two source values over the whole band
        return (start, end) if t0 > 0 else (start, start)
    return _cut(t0, t1, band, start, end, l0, l1, ratio)


@njit(cache=True, nogil=True, inline="always")
def _cut(t0, t1, band, start, end, l0, l1, ratio):
    """[lo, hi) of a (band, column) pair whose two across values differ in sign: the value is monotone along the
    band, so the set rows are a prefix (t0 > 0) or a suffix. The first row past the linear zero crossing is a
    guess, corrected by the exact signs of the rows around the cut."""
    p0 = t0 > 0
    crossing = band + np.float64(t0) / (np.float64(t0) - np.float64(t1))
    cut = int(min(max(np.ceil((crossing + 0.5) * ratio - 0.5), start), end))
    while cut > start and _positive(t0, t1, l0[cut - 1], l1[cut - 1]) != p0:
        cut -= 1
    while cut < end and _positive(t0, t1, l0[cut], l1[cut]) == p0:
        cut += 1
    return (start, cut) if p0 else (cut, end)


@njit(cache=True, nogil=True, inline="always")
def _across(logits, i, r, c0, c1, w0, w1, fused):
    """The horizontally interpolated value of object ``i``'s source row ``r`` at an output column with source
    columns ``c0``, ``c1`` and weights ``w0``, ``w1`` (the row past the last is the last: the last band reads its
    own row twice)."""
    r = min(r, logits.shape[1] - 1)
    if fused:
        return fused_multiply_add(logits[i, r, c0], w0, np.float32(logits[i, r, c1] * w1))
    return _fma32_scalar(logits[i, r, c0], w0, np.float32(logits[i, r, c1] * w1))


@njit(cache=True, nogil=True, inline="always")
def _pair_run(t0, t1, r, band_start, band_end, y_l0, y_l1, ratio):
    """[lo, hi) of band ``r`` at a column with across values ``t0``, ``t1`` (see ``_band_run``; lo == -1: not
    one run)."""
    start, end = band_start[r], band_end[r]
    if (t0 <= 0 and t1 <= 0) or start == end:  # most pairs: no set pixel, or all of them
        return start, start
    if t0 >= TINY_VALUE and t1 >= TINY_VALUE:
        return start, end
    if (t0 > 0) != (t1 > 0) and abs(t0) >= TINY_VALUE and abs(t1) >= TINY_VALUE:
        return _cut(t0, t1, r, start, end, y_l0, y_l1, ratio)
    return _band_run(t0, t1, r, start, end, y_l0, y_l1, ratio)


@njit(cache=True, nogil=True, inline="always")
def _run_at(logits, i, r, x, ys, xs, fused):
    """``_pair_run`` of object ``i``'s band ``r`` at output column ``x`` (``ys``: band start, band end, row weights
    l0, l1, ratio; ``xs``: source columns i0, i1 and weights l0, l1 of each output column)."""
    c0, c1, w0, w1 = xs[0][x], xs[1][x], xs[2][x], xs[3][x]
    t0 = _across(logits, i, r, c0, c1, w0, w1, fused)
    t1 = _across(logits, i, r + 1, c0, c1, w0, w1, fused)
    return _pair_run(t0, t1, r, ys[0], ys[1], ys[2], ys[3], ys[4])


@njit_no_refcount
def _band_extent(logits, i, r, x0, nx, ys, xs, fused, top):
    """(first row, one past the last row) set in band ``r`` over columns [x0, x0 + nx); (-1, -1) for none, (-2, -2)
    where a pair's mask is not one run. For the box's ``top`` only the first row counts, else only the last: the
    scan stops once that is the band's own first (last) row."""
    first, last = -1, -1
    for x in range(x0, x0 + nx):
        lo, hi = _run_at(logits, i, r, x, ys, xs, fused)
        if lo < 0:
            return -2, -2
        if hi > lo:
            first = lo if first < 0 else min(first, lo)
            last = max(last, hi)
            if (first == ys[0][r]) if top else (last == ys[1][r]):
                break
    return first, last


@njit_no_refcount
def _column_set(logits, i, b0, nb, x, ys, xs, fused):
    """1 if output column ``x`` has a set pixel in bands [b0, b0 + nb), 0 if not, -1 where a pair's mask is not one
    run."""
    for r in range(b0, b0 + nb):
        lo, hi = _run_at(logits, i, r, x, ys, xs, fused)
        if lo < 0:
            return -1
        if hi > lo:
            return 1
    return 0


@njit_no_refcount
def _own_box(logits, i, b0, nb, x0, nx, ys, xs, fused):
    """(left, top, right, bottom) of object ``i``'s own mask (before claims; ends exclusive, zeros for none), from
    its outermost set bands and columns only; left == -1 where a pair's mask is not one run."""
    top = bottom = -1
    for r in range(b0, b0 + nb):  # the first band with a set pixel holds the top row
        top, _ = _band_extent(logits, i, r, x0, nx, ys, xs, fused, True)
        if top != -1:
            break
    if top == -1:
        return 0, 0, 0, 0
    for r in range(b0 + nb - 1, b0 - 1, -1):  # the last one, the bottom row
        _, bottom = _band_extent(logits, i, r, x0, nx, ys, xs, fused, False)
        if bottom != -1:
            break
    if top == -2 or bottom == -2:
        return -1, 0, 0, 0
    left = right = x0
    for x in range(x0, x0 + nx):  # the first column with a set pixel, then the last
        found = _column_set(logits, i, b0, nb, x, ys, xs, fused)
        if found != 0:
            left = x if found > 0 else -1
            break
    for x in range(x0 + nx - 1, x0 - 1, -1):
        found = _column_set(logits, i, b0, nb, x, ys, xs, fused)
        if found != 0:
            right = x + 1 if found > 0 else -1
            break
    if left < 0 or right < 0:
        return -1, 0, 0, 0
    return left, top, right, bottom


@njit_no_refcount
def _column_runs(
    logits,
    keeps,
    order,
    group_of,
    shared,
    regions,
    claim_offsets,
    prefix,
    suffix,
    first_band,
    bands,
    first_col,
    cols,
    band_start,
    band_end,
    y_l0,
    y_l1,
    ratio,
    x_i0,
    x_i1,
    x_l0,
    x_l1,
    height,
    fused,
    counts,
    across,
    x_first,
    x_end,
    run_offsets,
    run_count,
    run_end,
    box_parts,
    skipped,
):
    """Every object's runs in output columns [x_first, x_end), in rank order (``order``: by group, then score): per
    column of its box, per band the run (``_pair_run``) unless higher-ranked objects of its group claimed the whole
    band there, what they claimed taken off (``keeps`` False: everything), the claims updated (``prefix``,
    ``suffix``), the run appended to ``counts[run_offsets[i]:]`` as COCO counts (the first run's gap counted from
    the frame's first pixel; touching runs merged): ``run_count[i]`` counts, ``run_end[i]`` the flat column-major
    end of the last run. ``box_parts[i]``: top, bottom, left, right of its computed pairs; ``skipped[i]``: a pair
    went uncomputed. The claims of group ``g`` are ``prefix`` and ``suffix`` from ``claim_offsets[g]``, column by column
    over its region (``regions``: first band, first column, bands, columns); ``across`` is scratch for one column's
    across values. Passes over disjoint column ranges may run at once. False if a pair's mask is not one run."""
    n = logits.shape[0]
    width = x_i0.shape[0]
    for k in range(n):
        i, g = order[k], group_of[k]
        base, written, done = run_offsets[i], 0, 0  # done: flat column-major end of the last set run
        b0, nb = first_band[i], bands[i]
        x0, x1 = max(first_col[i], x_first), min(first_col[i] + cols[i], x_end)
        if not (keeps[k] or shared[k]):  # no pixel to keep and no claim to make: only the box (``_own_box``)
            x1 = x0
        top, bottom, left, right = height, 0, width, 0  # of the pairs computed
        skip = False  # a pair went uncomputed: the box comes from the outermost bands and columns
        keep, claims = keeps[k], shared[k]
        region_top, region_left, region_rows = regions[g, 0], regions[g, 1], regions[g, 2]
        claims_at = claim_offsets[g] + b0 - region_top
        for x in range(x0, x1):
            column = x * height
            c0, c1, w0, w1 = x_i0[x], x_i1[x], x_l0[x], x_l1[x]
            for j in range(nb + 1):
                across[j] = _across(logits, i, b0 + j, c0, c1, w0, w1, fused)
            claims_column = claims_at + (x - region_left) * region_rows
            for j in range(nb):
                r = b0 + j
                t0, t1 = across[j], across[j + 1]
                if t0 <= 0 and t1 <= 0:  # most pairs: no set pixel
                    continue
                at = 0
                if claims:
                    at = claims_column + j
                    claimed_lo, claimed_hi = prefix[at], suffix[at]
                    if claimed_lo >= claimed_hi:  # the whole band is taken here: nothing to keep or claim
                        skip = True
                        continue
                    if (t0 > 0) != (t1 > 0) and abs(t0) >= TINY_VALUE and abs(t1) >= TINY_VALUE:
                        # a run from the band's start (t0 > 0) or to its end, ending at a cut: when the row next
                        # to the claims is already past the cut, the run lies inside them (one row, not the cut)
                        if t0 > 0 and claimed_lo > band_start[r]:
                            if not _positive(t0, t1, y_l0[claimed_lo], y_l1[claimed_lo]):
                                skip = True
                                continue
                        elif t1 > 0 and claimed_hi < band_end[r]:
                            if not _positive(t0, t1, y_l0[claimed_hi - 1], y_l1[claimed_hi - 1]):
                                skip = True
                                continue
                lo, hi = _pair_run(t0, t1, r, band_start, band_end, y_l0, y_l1, ratio)
                if lo < 0:
                    return False
                if hi == lo:
                    continue
                top, bottom = min(top, lo), max(bottom, hi)
                left, right = min(left, x), x + 1
                if claims:
                    start, end = band_start[r], band_end[r]
                    claimed_lo, claimed_hi = prefix[at], suffix[at]
                    if lo == start:
                        prefix[at] = max(claimed_lo, hi)
                    if hi == end:
                        suffix[at] = min(claimed_hi, lo)
                    lo, hi = max(lo, claimed_lo), min(hi, claimed_hi)
                if not keep or hi <= lo:
                    continue
                if column + lo == done and written > 0:  # touches the previous run: one run
                    counts[base + written - 1] += hi - lo
                else:
                    counts[base + written] = column + lo - done
                    counts[base + written + 1] = hi - lo
                    written += 2
                done = column + hi
        run_count[i], run_end[i] = written, done
        box_parts[i, 0], box_parts[i, 1], box_parts[i, 2], box_parts[i, 3] = top, bottom, left, right
        skipped[i] = skip
    return True


@njit_no_refcount
def _column_pass(fixed, passes, p):
    """``_column_runs`` over column range ``p``: ``fixed`` holds its arguments up to ``counts``, ``passes`` the
    per-pass arrays (ranges, across, run_offsets, run_count, run_end, box_parts, skipped), row ``p`` its own."""
    ranges, across, run_offsets, run_count, run_end, box_parts, skipped = passes
    return _column_runs(
        *fixed,
        across[p],
        ranges[p, 0],
        ranges[p, 1],
        run_offsets[p],
        run_count[p],
        run_end[p],
        box_parts[p],
        skipped[p],
    )


@njit(cache=True, nogil=True, parallel=True)
def _passes_at_once(fixed, passes):
    """Every ``_column_pass`` at once, on numba's threads; True if every pass is."""
    ok = np.zeros(passes[0].shape[0], np.bool_)
    for p in prange(passes[0].shape[0]):
        ok[p] = _column_pass(fixed, passes, p)
    return ok.all()


@njit(cache=True, nogil=True)
def _passes_in_turn(fixed, passes):
    """Every ``_column_pass`` in this thread, one after the other; True if every pass is."""
    for p in range(passes[0].shape[0]):
        if not _column_pass(fixed, passes, p):
            return False
    return True


@njit_no_refcount
def _own_boxes(logits, objects, first_band, bands, first_col, cols, ys, xs, fused, boxes):
    """``_own_box`` of each of ``objects`` into ``boxes`` (rows of ``objects``: left, top, right, bottom); False if a
    pair's mask is not one run."""
    for m in range(len(objects)):
        i = objects[m]
        left, top, right, bottom = _own_box(logits, i, first_band[i], bands[i], first_col[i], cols[i], ys, xs, fused)
        if left < 0:
            return False
        boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3] = left, top, right, bottom
    return True


@njit_no_refcount
def _stitch(pixels, run_offsets, run_count, run_end, box_parts, counts, offsets, lengths, boxes):
    """Per object, the counts of the column passes (one row of ``run_offsets``, ``run_count``, ``run_end`` and
    ``box_parts`` a pass, in column order) joined into its COCO counts at ``counts[offsets[i]:]`` (``lengths[i]``
    of them; runs that meet at a cut merged, the background after the last run added), and its box from the
    passes' extents. The first pass's counts are in place already; a later pass's move down behind them."""
    passes, n = run_count.shape
    for i in range(n):
        to, done = offsets[i], 0
        for p in range(passes):
            start, end = run_offsets[p, i], run_offsets[p, i] + run_count[p, i]
            if start == end:
                continue
            gap = np.int64(counts[start]) - done  # the pass's first gap counts from the frame's first pixel
            if gap == 0 and to > offsets[i]:  # meets the previous pass's last run: one run
                counts[to - 1] += counts[start + 1]
            else:
                counts[to] = gap
                counts[to + 1] = counts[start + 1]
                to += 2
            if to != start + 2:
                for q in range(start + 2, end):
                    counts[to + q - start - 2] = counts[q]
            to += end - start - 2
            done = run_end[p, i]
        if to == offsets[i] or done < pixels:  # the background after the last run (no empty one at the end)
            counts[to] = pixels - done
            to += 1
        lengths[i] = to - offsets[i]
        top, bottom, left, right = 1 << 62, 0, 1 << 62, 0
        for p in range(passes):
            if box_parts[p, i, 3] > box_parts[p, i, 2]:
                top, bottom = min(top, box_parts[p, i, 0]), max(bottom, box_parts[p, i, 1])
                left, right = min(left, box_parts[p, i, 2]), max(right, box_parts[p, i, 3])
        if right > left:
            boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = left, top, right, bottom
