"""DETR-style detector losses and SAM 2-style mask losses.

Detector (per image and phrase): Hungarian matching of queries to ground-truth objects (scipy) on a
classification + L1 + GIoU cost; focal loss on every query's logit; L1 + GIoU on matched boxes; BCE +
dice on matched masks; BCE on the presence logit; BCE + dice of the semantic-segmentation head against
the union of the phrase's objects (a dense signal that ties the phrase to image regions). Masks are
compared at the source image's resolution after the same bilinear upsampling the engine applies to
low-res logits, so training optimizes exactly the mask a subscriber receives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class LossWeights:
    focal: float = 2.0
    l1: float = 5.0
    giou: float = 2.0
    mask_bce: float = 5.0
    dice: float = 5.0
    presence: float = 1.0
    semantic: float = 2.0  # dense BCE + dice of the semantic head vs the union of the phrase's objects
    match: float = 2.0  # the DETR encoder's per-cell phrase match (training-only head, see auxiliary.py)
    query_position: float = 2.0  # the matched queries' mask embeddings vs their objects' box centres
    twin: float = 5.0  # exemplar prompts: distance to the outputs of the phrase asking for the same objects
    focal_alpha: float = 0.5  # positives and negatives weigh the same: scores must clear 0.5 and 0.7
    focal_gamma: float = 1.0


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU matrix (N, M) of xyxy boxes."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / union.clamp(min=1e-7)
    lt, rb = torch.min(a[:, None, :2], b[None, :, :2]), torch.max(a[:, None, 2:], b[None, :, 2:])
    hull = (rb - lt).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-7)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise focal loss (RetinaNet) of logits vs 0/1 targets."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    return weight * ce * (1 - p_t) ** gamma


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-mask dice loss (N,) of logits (N, H, W) vs 0/1 targets."""
    p = logits.sigmoid().flatten(1)
    t = targets.flatten(1)
    return 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Low-res mask logits (N, h, w) at ``size``: ``logits_to_masks`` before its threshold."""
    return F.interpolate(logits[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def mask_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed BCE (mean over pixels) and dice of low-res logits (N, h, w) vs full-res targets (N, H, W)."""
    if logits.shape[0] == 0:
        zero = logits.sum() * 0
        return zero, zero
    up = upsample_logits(logits, tuple(targets.shape[-2:]))
    bce = F.binary_cross_entropy_with_logits(up, targets, reduction="none").flatten(1).mean(1)
    return bce.sum(), dice_loss(up, targets).sum()


def match(
    logits: torch.Tensor, boxes: torch.Tensor, gt_boxes: torch.Tensor, w: LossWeights
) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of Q queries to G ground-truth boxes: (query indices, gt indices)."""
    with torch.no_grad():
        p = logits.sigmoid()[:, None]
        pos = w.focal_alpha * (1 - p) ** w.focal_gamma * -(p + 1e-8).log()
        neg = (1 - w.focal_alpha) * p**w.focal_gamma * -(1 - p + 1e-8).log()
        cost = (
            w.focal * (pos - neg)
            + w.l1 * torch.cdist(box_xyxy_to_cxcywh(boxes), box_xyxy_to_cxcywh(gt_boxes), p=1)
            - w.giou * generalized_box_iou(boxes, gt_boxes)
        )
    rows, cols = linear_sum_assignment(cost.float().cpu().numpy())
    return rows, cols


def box_class_losses(
    logits: torch.Tensor, boxes: torch.Tensor, gt_boxes: torch.Tensor, w: LossWeights
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Focal loss of every query's logit (Q,) and L1 + GIoU of the matched ones among ``boxes`` (Q, 4)
    vs ``gt_boxes`` (G, 4), all normalized xyxy. Returns the losses and the matched (query, gt) indices."""
    target = torch.zeros_like(logits)
    losses = {}
    q = g = torch.zeros(0, dtype=torch.long)
    if gt_boxes.shape[0] > 0:
        q, g = (torch.as_tensor(i) for i in match(logits, boxes, gt_boxes, w))
        target[q] = 1.0
        pb, tb = boxes[q], gt_boxes[g]
        losses["l1"] = F.l1_loss(box_xyxy_to_cxcywh(pb), box_xyxy_to_cxcywh(tb), reduction="sum")
        losses["giou"] = (1 - generalized_box_iou(pb, tb).diagonal()).sum()
    losses["focal"] = sigmoid_focal_loss(logits, target, w.focal_alpha, w.focal_gamma).sum()
    return losses, q, g


def detector_losses(
    out,
    index: int,
    gt_masks: torch.Tensor,
    gt_boxes: torch.Tensor,
    w: LossWeights,
    earlier_layers: list[tuple[torch.Tensor, torch.Tensor]] = (),
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Losses of one (image, phrase) detector output row ``index`` against its G objects
    (``gt_masks`` (G, H, W) float 0/1 at source resolution, ``gt_boxes`` (G, 4) normalized xyxy).

    ``earlier_layers``: this row's (logits (Q,), boxes (Q, 4)) of the decoder layers before the last, each
    matched on its own and given the focal, L1 and GIoU terms too (DETR's auxiliary decoding losses, summed
    into the same names): every refinement step learns to localize, not only the last.

    Returns the losses and the last layer's matched (query, object) indices."""
    logits, boxes = out.pred_logits[index].float(), out.pred_boxes[index].float()
    present = gt_boxes.shape[0] > 0
    losses, q, g = box_class_losses(logits, boxes, gt_boxes, w)
    for layer_logits, layer_boxes in earlier_layers:
        for name, value in box_class_losses(layer_logits.float(), layer_boxes.float(), gt_boxes, w)[0].items():
            losses[name] = losses[name] + value
    losses["presence"] = F.binary_cross_entropy_with_logits(
        out.presence_logits[index].float().reshape(()), torch.tensor(float(present))
    )
    if present:
        losses["mask_bce"], losses["dice"] = mask_losses(out.pred_masks[index][q], gt_masks[g])
    union = gt_masks.amax(0, keepdim=True) if present else gt_masks.new_zeros(1, *gt_masks.shape[-2:])
    bce, dice = mask_losses(out.semantic_seg[index].float(), union)
    losses["semantic"] = bce + dice
    return losses, q, g
