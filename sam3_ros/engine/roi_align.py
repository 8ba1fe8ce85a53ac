"""``torchvision.ops.roi_align`` in plain torch, for SAM 3's exemplar-box (geometry) encoder.

transformers' ``Sam3GeometryEncoder`` calls ``torchvision.ops.roi_align``; the torchvision wheels on
PyPI are CUDA builds that do not load beside a CPU torch, so without torchvision we give the
transformers module this implementation of the same function (defaults: ``spatial_scale=1``,
``sampling_ratio=-1`` (adaptive), ``aligned=False``).
"""

from __future__ import annotations

import math
import types

import torch


def roi_align(features: torch.Tensor, boxes: list[torch.Tensor], output_size: int) -> torch.Tensor:
    """Average of bilinear samples over an ``output_size`` grid of bins in each box.

    ``features`` (B, C, H, W); ``boxes`` one (K_b, 4) xyxy tensor per image, in feature pixels.
    Returns (sum K_b, C, output_size, output_size).
    """
    out = []
    _, _, h, w = features.shape
    for image, image_boxes in enumerate(boxes):
        for box in image_boxes.float().unbind(0):  # exemplar boxes are few: a loop over prompts, not objects
            x0, y0, x1, y1 = box.tolist()
            roi_w, roi_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
            bin_w, bin_h = roi_w / output_size, roi_h / output_size
            grid_w, grid_h = math.ceil(roi_w / output_size), math.ceil(roi_h / output_size)
            ys = y0 + (torch.arange(output_size * grid_h, dtype=torch.float32) + 0.5) * (bin_h / grid_h)
            xs = x0 + (torch.arange(output_size * grid_w, dtype=torch.float32) + 0.5) * (bin_w / grid_w)
            samples = _bilinear(features[image].float(), ys.to(features.device), xs.to(features.device), h, w)
            c = samples.shape[0]
            pooled = samples.view(c, output_size, grid_h, output_size, grid_w).mean(dim=(2, 4))
            out.append(pooled.to(features.dtype))
    if not out:
        return features.new_zeros(0, features.shape[1], output_size, output_size)
    return torch.stack(out)


def _bilinear(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Samples (C, len(ys), len(xs)) of ``image`` (C, H, W) with torchvision's border rules."""

    def axis(v: torch.Tensor, size: int):
        outside = (v < -1.0) | (v > size)
        v = v.clamp(min=0)
        low = v.floor().long().clamp(max=size - 1)
        high = (low + 1).clamp(max=size - 1)
        v = torch.where(low >= size - 1, low.float(), v)
        frac = v - low.float()
        return low, high, frac, outside

    y_low, y_high, fy, y_out = axis(ys, h)
    x_low, x_high, fx, x_out = axis(xs, w)
    top = image[:, y_low][:, :, x_low] * (1 - fx) + image[:, y_low][:, :, x_high] * fx
    bottom = image[:, y_high][:, :, x_low] * (1 - fx) + image[:, y_high][:, :, x_high] * fx
    value = top * (1 - fy)[:, None] + bottom * fy[:, None]
    inside = ~(y_out[:, None] | x_out[None, :])
    return value * inside


def install_for_transformers() -> None:
    """Give transformers' SAM 3 module a ``torchvision.ops.roi_align`` when torchvision is missing."""
    from transformers.models.sam3 import modeling_sam3

    if getattr(modeling_sam3, "torchvision", None) is None:
        modeling_sam3.torchvision = types.SimpleNamespace(ops=types.SimpleNamespace(roi_align=roi_align))
