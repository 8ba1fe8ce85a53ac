"""Mask post-processing on device: connected components, hole filling, boxes, resizing.

Torch ops (any device), except on CPU masks: connected components there are scipy's one labelling pass
instead of the iterative pooling a device needs (a CUDA kernel of the same signature may replace the pooling),
and hole filling is one compiled union-find over each mask's runs of pixels (``small_components``) instead of a
dozen tensor ops.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit

from .host_kernels import njit_no_refcount

# 8-connected within each image of a (B, H, W) stack, never across images: one scipy pass labels them all
_EIGHT_CONNECTED_PER_IMAGE = np.zeros((3, 3, 3), bool)
_EIGHT_CONNECTED_PER_IMAGE[1] = True
_CHECK_EVERY = 8  # label propagation steps between convergence checks (each check is one host sync)


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """8-connected components of a boolean (B, 1, H, W) mask.

    Returns ``(labels, areas)``, both (B, 1, H, W) int32: a per-image component label (0 = outside
    ``mask``) and, at every pixel of ``mask``, the area of its component (0 outside). On the CPU scipy
    labels in one pass; on a device, labels spread by pooling until they converge (a few host syncs).
    """
    return components_on_host(mask) if mask.device.type == "cpu" else components_by_pooling(mask)


def components_by_pooling(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``connected_components`` with torch ops on any device: the min label of each component spreads by
    max-pooling, with pointer jumping; checks convergence every few steps (one host sync each)."""
    b, _, h, w = mask.shape
    big = h * w + 1
    index = torch.arange(1, h * w + 1, device=mask.device, dtype=torch.int32).view(1, 1, h, w)
    labels = torch.where(mask, index, torch.full_like(index, big)).float()
    converged = not bool(mask.any())  # one sync to skip empty batches
    flat = labels.view(b, -1)
    while not converged:
        # the min label of each component spreads to neighbours, and every pixel jumps to the label
        # of the pixel its label names (pointer jumping), so long components converge in few steps
        for _ in range(_CHECK_EVERY):
            previous = labels
            labels = torch.where(mask, -F.max_pool2d(-labels, kernel_size=3, stride=1, padding=1), labels)
            flat = labels.view(b, -1)
            jumped = flat.gather(1, (flat.long() - 1).clamp(0, h * w - 1))
            labels = torch.where(mask, torch.minimum(labels, jumped.view_as(labels)), labels)
        converged = torch.equal(labels, previous)
    labels = torch.where(mask, labels, torch.zeros_like(labels)).to(torch.int64)
    flat = labels.view(b, -1)
    counts = torch.zeros(b, big, dtype=torch.int64, device=mask.device).scatter_add_(1, flat, torch.ones_like(flat))
    areas = torch.where(flat > 0, counts.gather(1, flat), torch.zeros_like(flat)).view(b, 1, h, w)
    return labels.to(torch.int32), areas.to(torch.int32)


def components_on_host(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``connected_components`` of a CPU mask with scipy: one labelling pass over the whole batch (labels
    are distinct across images, which a per-image labelling does not need but does not mind)."""
    import scipy.ndimage as ndimage

    labels, _ = ndimage.label(mask[:, 0].numpy(), structure=_EIGHT_CONNECTED_PER_IMAGE)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    areas = sizes[labels].astype(np.int32)
    return torch.from_numpy(labels.astype(np.int32))[:, None], torch.from_numpy(areas)[:, None]


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Fill background holes and remove foreground sprinkles of at most ``max_area`` pixels.

    ``logits`` is (B, 1, H, W) mask scores; the semantics are those of SAM 3's
    ``fill_holes_in_mask_scores``: small background components become 0.1, then foreground
    components smaller than both ``max_area`` and half the mask's area become -0.1.
    """
    if max_area <= 0 or logits.shape[0] == 0:
        return logits
    background = logits <= 0
    if logits.device.type == "cpu":
        filled, removed = small_components(background[:, 0].numpy(), max_area)
        logits = torch.where(torch.from_numpy(filled)[:, None], torch.full_like(logits, 0.1), logits)
        return torch.where(torch.from_numpy(removed)[:, None], torch.full_like(logits, -0.1), logits)
    _, areas = connected_components(background)
    logits = torch.where(background & (areas <= max_area), torch.full_like(logits, 0.1), logits)
    foreground = logits > 0
    limit = foreground.sum(dim=(2, 3), keepdim=True, dtype=torch.int32).floor_divide(2).clamp(max=max_area)
    _, areas = connected_components(foreground)
    return torch.where(foreground & (areas <= limit), torch.full_like(logits, -0.1), logits)


def small_components(background: np.ndarray, max_area: int) -> tuple[np.ndarray, np.ndarray]:
    """``fill_holes`` on the host for boolean (B, H, W) ``background`` masks: which pixels become 0.1 (in
    8-connected background components of at most ``max_area`` pixels) and which then become -0.1 (in foreground
    components of at most ``max_area`` and half the foreground's pixels)."""
    filled = np.zeros(background.shape, np.bool_)
    removed = np.zeros(background.shape, np.bool_)
    _small_components(np.ascontiguousarray(background), max_area, filled, removed)
    return filled, removed


@njit_no_refcount
def _find(parent, p):
    root = p
    while parent[root] != root:
        root = parent[root]
    while parent[p] != root:  # path compression
        parent[p], p = root, parent[p]
    return root


@njit_no_refcount
def _component_runs(mask, start, end, rows, parent, area):
    """The 8-connected components of ``mask`` (H, W) over its runs of set pixels (union-find on runs, not pixels:
    a mask has far fewer). Fills, per run in row-major order, its columns [``start``, ``end``) and ``parent``;
    ``rows[y]:rows[y + 1]`` are row y's runs; ``area`` at a component's root is its pixel count."""
    h, w = mask.shape
    n = 0
    rows[0] = 0
    for y in range(h):
        above = rows[y - 1] if y else 0  # the first run of the row above not left of the current run
        x = 0
        while x < w:
            if not mask[y, x]:
                x += 1
                continue
            first = x
            while x < w and mask[y, x]:
                x += 1
            start[n], end[n], parent[n], area[n] = first, x, n, x - first
            while above < rows[y] and end[above] < first:  # runs that end before this one cannot touch later ones
                above += 1
            k = above
            while k < rows[y] and start[k] <= x:  # within one column: 8-connected
                a, b = _find(parent, k), _find(parent, n)
                if a != b:
                    parent[max(a, b)] = min(a, b)
                    area[min(a, b)] += area[max(a, b)]
                k += 1
            n += 1
        rows[y + 1] = n


@njit_no_refcount
def _mark_small(rows, start, end, parent, area, limit, out):
    """Set ``out`` (H, W) on the runs whose component has at most ``limit`` pixels; returns how many were set."""
    marked = 0
    for y in range(len(rows) - 1):
        for k in range(rows[y], rows[y + 1]):
            if area[_find(parent, k)] <= limit:
                out[y, start[k] : end[k]] = True
                marked += end[k] - start[k]
    return marked


@njit(cache=True, nogil=True)
def _small_components(background, max_area, filled, removed):
    b, h, w = background.shape
    capacity = h * ((w + 1) // 2)  # runs are separated by at least one pixel
    start, end = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
    parent, area = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
    rows = np.empty(h + 1, np.int64)
    foreground = np.empty((h, w), np.bool_)
    for i in range(b):
        _component_runs(background[i], start, end, rows, parent, area)
        _mark_small(rows, start, end, parent, area, max_area, filled[i])
        count = 0
        for y in range(h):
            for x in range(w):
                foreground[y, x] = not background[i, y, x] or filled[i, y, x]
                count += foreground[y, x]
        _component_runs(foreground, start, end, rows, parent, area)
        _mark_small(rows, start, end, parent, area, min(count // 2, max_area), removed[i])


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes (N, 4) float32 of boolean masks (N, H, W); empty masks give zeros."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.float32, device=masks.device)
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    ys = torch.arange(h, device=masks.device, dtype=torch.float32)
    xs = torch.arange(w, device=masks.device, dtype=torch.float32)
    inf = torch.full((), float("inf"), device=masks.device)  # a fill, not a host->device copy
    x0 = torch.where(cols, xs, inf).amin(1)
    x1 = torch.where(cols, xs, -inf).amax(1) + 1
    y0 = torch.where(rows, ys, inf).amin(1)
    y1 = torch.where(rows, ys, -inf).amax(1) + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where(cols.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def logits_to_masks(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Low-res mask logits (N, h, w) -> boolean masks (N, H, W) at ``size`` (bilinear, > 0)."""
    if logits.shape[0] == 0:
        return torch.zeros(0, *size, dtype=torch.bool, device=logits.device)
    up = F.interpolate(logits[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return up[:, 0] > 0
