"""The functions the engine calls: CUDA kernels for CUDA tensors when they compile, compiled host loops
(``host_ops``) for the merge's CPU tensors, torch references otherwise.

Same signatures and results as ``sam3_ros.kernels.torch_ops`` (and ``sam3_ros.codec.rle.encode`` for
``rle_encode``). The first CUDA call compiles (or loads from the disk cache) the kernels; if that fails
(no cuda-python, no NVRTC, unsupported GPU) the reason is logged once, kept (``kernel_status``), and
every later call uses the reference.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from sam3_ros.codec import rle
from sam3_ros.kernels import host_ops, torch_ops
from sam3_ros.kernels.nvrtc import KernelsUnavailable
from sam3_ros.kernels.torch_ops import MergeConfig, MergePlan

log = logging.getLogger(__name__)
_failure: str | None = None
_ready: set[int | None] = set()  # device indices whose kernels are loaded
_KERNELS = (
    ("mask_iou", "pack_masks"),
    ("mask_iou", "pair_iou"),
    ("mask_nms", "nms_from_iou"),
    ("merge_plan", "merge_plan"),
    ("exclusive_masks", "exclusive_order"),
    ("exclusive_masks", "exclusive_masks"),
    ("rle", "rle_count_edges"),
    ("rle", "rle_write_edges"),
    ("rle", "rle_edges_to_counts"),
)


def kernel_status(device: torch.device) -> str | None:
    """None if the CUDA kernels run on ``device``; otherwise why not (the first failure is kept for the process)."""
    global _failure
    if device.type != "cuda":
        return f"{device.type} is not a CUDA device"
    if _failure is None and device.index not in _ready:
        try:
            from sam3_ros.kernels.launch import function

            for source, kernel in _KERNELS:
                function(device.index, source, kernel)
            _ready.add(device.index)
        except KernelsUnavailable as exc:
            _failure = str(exc)
            log.warning("CUDA kernels unavailable, using the torch references: %s", exc)
    return _failure


def _cuda(*tensors: torch.Tensor):
    """The ``cuda_ops`` module when every tensor is on CUDA and the kernels work there, else None."""
    if not all(t.is_cuda for t in tensors) or kernel_status(tensors[0].device) is not None:
        return None
    from sam3_ros.kernels import cuda_ops

    return cuda_ops


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask in ``a`` (N, H, W) with every mask in ``b`` (M, H, W); (N, M) float32.

    The kernels take bool masks; other dtypes go to the reference.
    """
    if a.dtype == b.dtype == torch.bool and a.device.type == b.device.type == "cpu":
        return host_ops.mask_iou(a, b)
    ops = _cuda(a, b) if a.dtype == b.dtype == torch.bool else None
    return (ops or torch_ops).mask_iou(a, b)


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy mask NMS; (N,) bool keep mask in input order (see ``torch_ops.mask_nms``)."""
    ops = _cuda(masks, scores) if masks.dtype == torch.bool else None
    return (ops or torch_ops).mask_nms(masks, scores, iou_threshold)


def nms_from_iou(iou: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy suppression over a precomputed (N, N) IoU matrix (see ``torch_ops.nms_from_iou``)."""
    return (_cuda(iou, scores) or torch_ops).nms_from_iou(iou, scores, iou_threshold)


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
    """Detection-track merge (see ``torch_ops.merge_plan``); float32 IoUs and scores on the CPU go to the host loop."""
    tensors = (iou, det_scores, trk_nonempty, keep_alive, next_id)
    on_host = all(t.device.type == "cpu" for t in tensors) and iou.dtype == det_scores.dtype == torch.float32
    ops = host_ops if on_host else (_cuda(*tensors) or torch_ops)
    return ops.merge_plan(iou, det_scores, trk_nonempty, keep_alive, next_id, config, det_prompt, trk_prompt)


def exclusive_masks(masks: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Masks that share no pixel within a group (see ``torch_ops.exclusive_masks``); the kernel takes bool masks."""
    ops = _cuda(masks, scores, groups) if masks.dtype == torch.bool else None
    return (ops or torch_ops).exclusive_masks(masks, scores, groups)


def rle_encode(masks: torch.Tensor) -> list[np.ndarray]:
    """COCO RLE counts of (N, H, W) masks, one uint32 array per mask (see ``sam3_ros.codec.rle.encode``)."""
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {tuple(masks.shape)}")
    ops = _cuda(masks)
    if ops is None:
        return rle.encode(masks.cpu().numpy())
    return ops.rle_encode(masks if masks.dtype == torch.bool else masks != 0)
