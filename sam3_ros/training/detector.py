"""One detector training step: a batch of images, several phrases each, one batched detector pass."""

from __future__ import annotations

import numpy as np
import torch

from ..engine.preprocess import to_pixels
from .data import DetectorSample
from ..engine.mask_ops import masks_to_boxes
from .losses import LossWeights, detector_losses


def pixels_of(images: list[np.ndarray], size: int, device: torch.device) -> torch.Tensor:
    """Images (H, W, 3) uint8 -> (B, 3, size, size), preprocessed exactly as ``Engine.step`` does."""
    return torch.cat([to_pixels(torch.from_numpy(np.ascontiguousarray(im)).to(device), size, torch.float32)
                      for im in images])


def detector_step(model, tokenize, samples: list[DetectorSample], weights: LossWeights,
                  device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its named parts for ``samples``; every (image, phrase) pair is one row of one
    detector call on shared vision features. Box, mask and focal terms are normalized by the number
    of ground-truth objects in the batch (as DETR does), presence and semantic terms by the number of pairs."""
    detector = model.detector_model
    size = int(model.tracker_model.image_size)
    vision = detector.get_vision_features(pixel_values=pixels_of([s.image for s in samples], size, device))
    pairs = [(i, t) for i, s in enumerate(samples) for t in s.targets]
    index = torch.tensor([i for i, _ in pairs], device=device)
    rows = type(vision)(
        last_hidden_state=vision.last_hidden_state.index_select(0, index),
        fpn_hidden_states=tuple(f.index_select(0, index) for f in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(f.index_select(0, index) for f in vision.fpn_position_encoding),
    )
    tokens = tokenize([t.phrase for _, t in pairs])
    out = detector(vision_embeds=rows, input_ids=tokens["input_ids"].to(device),
                   attention_mask=tokens["attention_mask"].to(device))
    totals: dict[str, torch.Tensor] = {}
    for row, (_, target) in enumerate(pairs):
        masks = torch.from_numpy(target.masks).to(device)
        h, w = masks.shape[-2:]
        gt_boxes = masks_to_boxes(masks) / torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
        gt_masks = masks.float()
        for name, value in detector_losses(out, row, gt_masks, gt_boxes, weights).items():
            totals[name] = totals.get(name, 0) + value
    objects = max(1, sum(len(t.masks) for _, t in pairs))
    per_pair = ("presence", "semantic")
    scaled = {name: value / (len(pairs) if name in per_pair else objects) for name, value in totals.items()}
    loss = sum(getattr(weights, name) * value for name, value in scaled.items())
    return loss, {name: float(value.detach()) for name, value in scaled.items()}
