"""Training-only heads that give the toy model dense supervision; they are not part of the saved model.

Trained jointly from scratch, the detector never ties a phrase to the image in a CPU budget: the
vision features keep moving while the prompt fusion tries to read them, and the phrase stays ignored
(the presence loss stays flat at its prior). Dense signals break that:

- ``ConceptHead``: the vision encoder first learns, per pixel, which concept covers it (cross-entropy
  over the world's concepts and background on each FPN level the detector reads), and, per concept
  region, from its pooled logits (``region_loss``: the per-pixel term alone teaches shape slowly). The
  frozen features then carry colour and shape where the prompt fusion can find them - the role SAM 3's
  pretrained Perception Encoder plays.
- ``MatchHead``: while the detector trains on frozen vision, the DETR encoder's fused image tokens
  predict, per cell, how much of it the phrase's objects cover - a direct target for the
  cross-attention to the phrase, which the presence, scores and masks then read.
- ``PositionHead``: beside the concept, the same FPN levels predict where each pixel is (Fourier
  features of its image coordinates). The concept target alone is translation-invariant and the
  features lose absolute position, so the dot-product mask head cannot tell two objects of one concept
  apart: both queries get the union of the two.
- ``QueryPositionHead``: in the detector phase, the matched queries' mask embeddings predict the same
  features at their objects' box centres: the other side of that dot product.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import BACKGROUND, DetectorSample

MATCH_POS_WEIGHT = 5.0  # covered cells are few: weigh them up so "nothing matches" is not a cheap answer


class ConceptHead(nn.Module):
    """A 1x1 convolution per FPN level: features (B, C, h, w) -> concept logits (B, concepts + 1, h, w)."""

    def __init__(self, channels: int, levels: int):
        super().__init__()
        self.levels = nn.ModuleList(nn.Conv2d(channels, BACKGROUND + 1, 1) for _ in range(levels))

    def loss(self, features: tuple[torch.Tensor, ...], samples: list[DetectorSample]) -> torch.Tensor:
        """Mean per-pixel cross-entropy over the levels against the samples' concept maps, each map
        resized (nearest) to the level's resolution the way the image is resized to the model's, plus
        ``region_loss`` on the same logits."""
        total = 0
        for head, feature in zip(self.levels, features):
            labels = torch.stack([_resize_labels(s.concepts, feature.shape[-2:]) for s in samples]).to(feature.device)
            logits = head(feature)
            total = total + F.cross_entropy(logits, labels) + region_loss(logits, labels)
        return total / len(self.levels)


def region_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each concept region's mean logits (B, K + 1, h, w) against its concept, every
    region of every image weighing the same. The per-pixel term is mostly background and colour, which
    come easily; what tells a region's shape is a few pixels' worth of it, so from that term alone shape is
    learned slowly. Pooled logits are what the detector's queries read, and their error is mostly shape."""
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, :BACKGROUND].float()  # (B, K, h, w)
    count = onehot.sum((-2, -1))
    pooled = torch.einsum("bchw,bkhw->bkc", logits, onehot) / count.clamp(min=1)[..., None]
    seen = count > 0
    concept = torch.arange(BACKGROUND, device=logits.device).expand_as(count)
    return F.cross_entropy(pooled[seen], concept[seen]) if seen.any() else logits.sum() * 0


POSITION_FREQUENCIES = (1.0, 2.0, 4.0)  # cycles per image side: the finest resolves about an object's radius


def fourier_position(xy: torch.Tensor) -> torch.Tensor:
    """Normalized points (..., 2) as x, y -> (..., 4 * len(POSITION_FREQUENCIES)): sin, then cos, of each
    coordinate at each frequency."""
    phases = [2 * np.pi * f * xy[..., i] for f in POSITION_FREQUENCIES for i in (0, 1)]
    return torch.stack([*(torch.sin(p) for p in phases), *(torch.cos(p) for p in phases)], dim=-1)


def position_targets(size: tuple[int, int]) -> torch.Tensor:
    """(4 * len(POSITION_FREQUENCIES), h, w): ``fourier_position`` of each cell centre of an h x w grid."""
    h, w = size
    y = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    x = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    grid = torch.stack([x[None, :].expand(h, w), y[:, None].expand(h, w)], dim=-1)
    return fourier_position(grid).permute(2, 0, 1)


class PositionHead(nn.Module):
    """A 1x1 convolution per FPN level: features (B, C, h, w) -> ``position_targets`` of that level."""

    def __init__(self, channels: int, levels: int):
        super().__init__()
        outputs = 4 * len(POSITION_FREQUENCIES)
        self.levels = nn.ModuleList(nn.Conv2d(channels, outputs, 1) for _ in range(levels))

    def loss(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean squared error over the levels."""
        total = 0
        for head, feature in zip(self.levels, features):
            target = position_targets(tuple(feature.shape[-2:])).to(feature.device)
            total = total + F.mse_loss(head(feature), target.expand(feature.shape[0], -1, -1, -1))
        return total / len(self.levels)


class QueryPositionHead(nn.Module):
    """A linear map of the mask head's query embeddings (M, C) to ``fourier_position`` of the box centres
    of the objects they are matched to: the query side of the dot product learns where its object is, as
    ``PositionHead`` teaches the pixel side, so two queries on two objects of one concept can differ."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Linear(channels, 4 * len(POSITION_FREQUENCIES))

    def loss(self, embeds: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Mean squared error; ``centres`` (M, 2) normalized x, y. 0 for no queries."""
        if embeds.shape[0] == 0:
            return self.proj(embeds).sum() * 0
        return F.mse_loss(self.proj(embeds.float()), fourier_position(centres.float()))


class MatchHead(nn.Module):
    """A linear map of the DETR encoder's fused image tokens (P, h*w, C) to one logit per cell."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Linear(channels, 1)

    def loss(self, tokens: torch.Tensor, samples: list[DetectorSample], grid: tuple[int, int]) -> torch.Tensor:
        """BCE of each (image, phrase) row against the share of each cell its objects cover."""
        targets = []
        for sample in samples:
            h, w = sample.image.shape[:2]
            for target in sample.targets:
                union = target.masks.any(0) if target.present else np.zeros((h, w), bool)
                union = torch.from_numpy(union).float()[None, None]
                targets.append(F.interpolate(union, size=grid, mode="area").flatten())
        targets = torch.stack(targets).to(tokens.device)
        logits = self.proj(tokens[:, : targets.shape[1]].float())[..., 0]
        return F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=torch.tensor(MATCH_POS_WEIGHT, device=tokens.device)
        )


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    x = torch.from_numpy(labels)[None, None].float()
    return F.interpolate(x, size=tuple(size), mode="nearest")[0, 0].long()


@contextlib.contextmanager
def captured_output(module: nn.Module):
    """Inside the block, ``box["output"]`` is ``module``'s output of its latest call, ``box["args"]`` and
    ``box["kwargs"]`` what it was called with."""
    box: dict = {}
    handle = module.register_forward_hook(
        lambda _m, args, kwargs, output: box.update(args=args, kwargs=kwargs, output=output), with_kwargs=True
    )
    try:
        yield box
    finally:
        handle.remove()
