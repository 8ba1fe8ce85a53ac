"""Torch reference implementations that define what each CUDA kernel must compute.

They run on any device (CPU or GPU) and are what the engine uses when the CUDA kernels are not
available. Signatures here are the kernels' signatures.
"""

from __future__ import annotations

import torch


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask in ``a`` (N, H, W) with every mask in ``b`` (M, H, W), both boolean.

    Returns (N, M) float32. Two empty masks have IoU 0.
    """
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask sizes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression by mask IoU.

    Visits masks by descending score (ties: lower index first); a mask is suppressed if its IoU with
    an already kept mask is above ``iou_threshold``. Returns a (N,) boolean keep mask in input order.
    No host synchronization: the loop length is the (host-known) number of masks.
    """
    n = masks.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=masks.device)
    if n == 0:
        return keep
    order = torch.sort(scores, descending=True, stable=True).indices
    over = mask_iou(masks[order], masks[order]) > iou_threshold
    kept_sorted = torch.ones(n, dtype=torch.bool, device=masks.device)
    for i in range(1, n):
        kept_sorted[i] = ~(over[:i, i] & kept_sorted[:i]).any()
    keep[order] = kept_sorted
    return keep
