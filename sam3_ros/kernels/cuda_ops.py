"""The CUDA kernels (``kernels/*.cu``) behind the reference signatures; inputs must be CUDA tensors.

Use ``sam3_ros.kernels.ops`` instead, which falls back to the torch references. Each function here
launches on the current torch stream and never waits for the GPU, except ``rle_encode``, which copies
each mask's count offsets and then the counts to the host.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from sam3_ros.kernels.launch import launch
from sam3_ros.kernels.torch_ops import MergeConfig, MergePlan, check_merge_inputs

_PACK_WARPS = 8  # must match PACK_WARPS in mask_iou.cu
_TILE = 16  # must match TILE in mask_iou.cu
_THREADS = 256
_SHARED_BYTES = 48 * 1024  # dynamic shared memory a block gets without opting in
_RLE_SEGMENT_ROWS = 64  # must match SEG in rle.cu
_GRID_Y = 65535  # largest gridDim.y: pack_masks puts one mask per block row
_PIXEL_BLOCKS = 1024  # blocks of per-pixel kernels: about one full wave of threads on a large GPU


def _require_cuda(*tensors: torch.Tensor) -> torch.device:
    device = tensors[0].device
    if device.type != "cuda" or any(t.device != device for t in tensors):
        raise ValueError(f"CUDA kernels need tensors on one CUDA device, got {[str(t.device) for t in tensors]}")
    return device


def _bool_masks(masks: torch.Tensor, what: str) -> torch.Tensor:
    if masks.ndim != 3 or masks.dtype != torch.bool:
        raise ValueError(f"{what} must be (N, H, W) bool, got {tuple(masks.shape)} {masks.dtype}")
    return masks.contiguous()


def _pack(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bit-packed (N, ceil(H*W/32)) int32 masks and their (N,) int32 areas."""
    n, hw = masks.shape[0], masks.shape[1] * masks.shape[2]
    if n > _GRID_Y:
        raise ValueError(f"mask_iou kernel takes at most {_GRID_Y} masks, got {n}")
    words = (hw + 31) // 32
    bits = torch.empty((n, words), dtype=torch.int32, device=masks.device)
    area = torch.zeros(n, dtype=torch.int32, device=masks.device)
    if n and words:
        blocks_per_mask = max(1, min(8, words // (4 * _PACK_WARPS)))  # a few words per warp
        launch(
            "mask_iou",
            "pack_masks",
            (blocks_per_mask, n),
            (32 * _PACK_WARPS,),
            (masks, bits, area, hw, words),
            masks.device,
        )
    return bits, area


def _pair_iou(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    (a_bits, a_area), (b_bits, b_area) = a, b
    n, m, words = a_bits.shape[0], b_bits.shape[0], a_bits.shape[1]
    iou = torch.empty((n, m), dtype=torch.float32, device=a_bits.device)
    if n and m:
        grid = ((m + _TILE - 1) // _TILE, (n + _TILE - 1) // _TILE)
        launch(
            "mask_iou",
            "pair_iou",
            grid,
            (_TILE, _TILE),
            (a_bits, b_bits, a_area, b_area, iou, n, m, words),
            a_bits.device,
        )
    return iou


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask in ``a`` (N, H, W) with every mask in ``b`` (M, H, W), both bool; (N, M) float32."""
    _require_cuda(a, b)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask sizes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    packed_a = _pack(_bool_masks(a, "a"))
    packed_b = packed_a if b is a else _pack(_bool_masks(b, "b"))
    return _pair_iou(packed_a, packed_b)


def nms_from_iou(iou: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy suppression over an (N, N) IoU matrix; (N,) bool keep mask (see the reference)."""
    device = _require_cuda(iou, scores)
    n = iou.shape[0]
    if iou.shape != (n, n) or scores.shape != (n,):
        raise ValueError(f"need an (N, N) IoU matrix and (N,) scores, got {tuple(iou.shape)} and {tuple(scores.shape)}")
    keep = torch.empty(n, dtype=torch.bool, device=device)
    if n == 0:
        return keep
    words = (n + 63) // 64
    order = torch.empty(n, dtype=torch.int32, device=device)
    in_shared = (1 + n) * words * 8 <= _SHARED_BYTES
    over = ctypes.c_void_p(0) if in_shared else torch.empty((n, words), dtype=torch.int64, device=device)
    launch(
        "mask_nms",
        "nms_from_iou",
        (1,),
        (_THREADS,),
        (iou.float().contiguous(), scores.float().contiguous(), n, float(iou_threshold), order, over, keep),
        device,
        shared_bytes=(1 + n) * words * 8 if in_shared else words * 8,
    )
    return keep


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy mask NMS (see ``torch_ops.mask_nms``): IoU kernel, then the suppression kernel."""
    return nms_from_iou(mask_iou(masks, masks), scores, iou_threshold)


class _MergeConfigC(ctypes.Structure):
    """``struct MergeConfig`` of merge_plan.cu, passed by value."""

    _fields_ = [
        ("score_threshold", ctypes.c_float),
        ("assoc_iou", ctypes.c_float),
        ("track_assoc_iou", ctypes.c_float),
        ("new_object_score", ctypes.c_float),
        ("high_conf_score", ctypes.c_float),
        ("high_iou", ctypes.c_float),
        ("init_keep_alive", ctypes.c_longlong),
        ("max_keep_alive", ctypes.c_longlong),
        ("min_keep_alive", ctypes.c_longlong),
        ("decrease_keep_alive_when_empty", ctypes.c_int),
        ("max_objects", ctypes.c_longlong),
    ]


def merge_plan(
    iou: torch.Tensor,
    det_scores: torch.Tensor,
    trk_nonempty: torch.Tensor,
    keep_alive: torch.Tensor,
    next_id: torch.Tensor,
    config: MergeConfig = MergeConfig(),
    det_prompt: torch.Tensor | None = None,
    trk_prompt: torch.Tensor | None = None,
) -> MergePlan:
    """Detection-track merge on device; same arguments and result as ``torch_ops.merge_plan``."""
    device = _require_cuda(iou, det_scores, trk_nonempty, keep_alive, next_id)
    n, m = check_merge_inputs(iou, det_scores, trk_nonempty, keep_alive, next_id, det_prompt, trk_prompt)
    cfg = _MergeConfigC(*(getattr(config, name) for name, _ in _MergeConfigC._fields_))
    # Two allocations for all outputs: this runs once per frame and allocation costs more than the kernel.
    longs = torch.empty(2 * n + 2 * m + 1, dtype=torch.long, device=device)
    flags = torch.empty(2, m, dtype=torch.bool, device=device)
    det_track, det_new_id, recondition, alive, next_out = longs.split([n, n, m, m, 1])
    out = MergePlan(det_track, det_new_id, flags[0], flags[1], recondition, alive, next_out)
    prompts = (
        (det_prompt.long().contiguous(), trk_prompt.long().contiguous())
        if det_prompt is not None
        else (ctypes.c_void_p(0), ctypes.c_void_p(0))
    )
    launch(
        "merge_plan",
        "merge_plan",
        (1,),
        (_THREADS,),
        (
            iou.float().contiguous(),
            det_scores.float().contiguous(),
            *prompts,
            trk_nonempty.bool().contiguous(),
            keep_alive.long().contiguous(),
            next_id.long().contiguous(),
            n,
            m,
            cfg,
            *out,
        ),
        device,
        shared_bytes=n * 10,
    )
    return out


def exclusive_masks(masks: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Per-group pixel non-overlap of (N, H, W) bool masks on device; same result as ``torch_ops.exclusive_masks``."""
    device = _require_cuda(masks, scores, groups)
    masks = _bool_masks(masks, "masks")
    n, h, w = masks.shape
    if scores.shape != (n,) or groups.shape != (n,):
        raise ValueError(
            f"need (N,) scores and groups for {n} masks, got {tuple(scores.shape)} and {tuple(groups.shape)}"
        )
    out = torch.empty_like(masks)
    if n == 0 or h * w == 0:
        return out
    scores, groups = scores.float().contiguous(), groups.long().contiguous()
    order = torch.empty(n, dtype=torch.int32, device=device)
    launch("exclusive_masks", "exclusive_order", (1,), (_THREADS,), (scores, groups, n, order), device)
    blocks = min((h * w + _THREADS - 1) // _THREADS, _PIXEL_BLOCKS)  # grid-stride loops cover the rest
    launch(
        "exclusive_masks",
        "exclusive_masks",
        (blocks,),
        (_THREADS,),
        (masks, scores, groups, order, n, ctypes.c_longlong(h * w), out),
        device,
    )
    return out


def rle_encode(masks: torch.Tensor) -> list[np.ndarray]:
    """COCO RLE counts (uint32, column-major, background first) of (N, H, W) bool CUDA masks."""
    device = _require_cuda(masks)
    masks = _bool_masks(masks, "masks")
    n, h, w = masks.shape
    if n == 0 or h * w == 0:
        return [np.zeros(1, np.uint32) for _ in range(n)]  # the reference's counts of an empty mask
    segments = (h + _RLE_SEGMENT_ROWS - 1) // _RLE_SEGMENT_ROWS
    blocks = min((n * w * segments + _THREADS - 1) // _THREADS, 65535)  # grid-stride loops cover the rest
    seg_edges = torch.empty(n * w * segments, dtype=torch.int32, device=device)
    launch("rle", "rle_count_edges", (blocks,), (_THREADS,), (masks, n, h, w, segments, seg_edges), device)
    ends = torch.cumsum(seg_edges, 0)
    starts = ends - seg_edges
    # The one sizing sync: each mask's first edge offset, and the total.
    bounds = torch.cat([starts.view(n, w * segments)[:, 0], ends[-1:]]).cpu().numpy()
    total = int(bounds[-1])
    edges = torch.empty(total, dtype=torch.int32, device=device)
    counts = torch.empty(total, dtype=torch.int32, device=device)
    launch("rle", "rle_write_edges", (blocks,), (_THREADS,), (masks, n, h, w, segments, starts, edges), device)
    launch(
        "rle",
        "rle_edges_to_counts",
        (min((total + _THREADS - 1) // _THREADS, 65535),),
        (_THREADS,),
        (edges, ctypes.c_longlong(total), counts),
        device,
    )
    host = counts.cpu().numpy().view(np.uint32)
    # A mask's counts are its edges' differences: one fewer than its edges.
    return [host[bounds[k] : bounds[k + 1] - 1].copy() for k in range(n)]
