"""One tracker training step (SAM 2-style clip training) through the engine's own tracker code.

The objects of a clip start from their first-frame masks the way the engine starts a detection
(``BatchedTracker.from_masks`` on a binarized low-res mask); every later frame is propagated with the
memory of the frames before it (``BatchedTracker.propagate``) and written back the way ``Engine.step``
writes it, into a real ``MemoryBank``. Gradients flow through memory attention, the mask decoder, the
memory encoder and the tracker's neck; the predicted masks that become memory are detached, so a
clip is a chain of one-frame steps, not one long graph through the masks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.engine import memory_bank_options
from ..engine.memory_bank import MemoryBank
from ..engine.tracker import BatchedTracker, downsample_masks
from ..settings import Settings
from .data import TrackerClip
from .detector import vision_features
from .losses import dice_loss, upsample_logits

MEMORY_LOGIT = 10.0  # Engine.step writes memory with object scores of +-10 (present or not)


@torch.no_grad()
def balance_memory_encoder(model, clip: TrackerClip, device: torch.device) -> float:
    """Scale the memory encoder's image term (``feature_projection``) to the size of its mask term on the
    first frame of ``clip``; returns the factor. A memory is image term + mask term: when the image term
    is much larger (the trained vision features are), the mask, which says which object the memory is of,
    hardly shows in it."""
    tracker_model = model.tracker_model
    encoder = tracker_model.memory_encoder
    vision = vision_features(model, list(clip.frames[:1]), device)
    feats, _ = model.get_vision_features_for_tracker(vision)
    grid = tracker_model.backbone_feature_sizes[-1]
    image = encoder.feature_projection(feats[-1].permute(1, 2, 0).reshape(1, -1, *grid))
    size = tuple(4 * s for s in tracker_model.prompt_encoder.mask_input_size)
    masks = (
        F.interpolate(
            torch.from_numpy(clip.masks[0]).to(device, torch.float32)[:, None],
            size=size,
            mode="bilinear",
            align_corners=False,
        )
        > 0.5
    )
    config = tracker_model.config
    masks = masks.float() * config.sigmoid_scale_for_mem_enc + config.sigmoid_bias_for_mem_enc
    factor = float(downsample_masks(encoder.mask_downsampler, masks).std() / image.std())
    encoder.feature_projection.weight.mul_(factor)
    encoder.feature_projection.bias.mul_(factor)
    return factor


def propagate_clip(model, clip: TrackerClip, device: torch.device) -> Iterator[tuple[int, dict]]:
    """Start the clip's objects from their first-frame masks (binarized at low resolution, as a detection
    starts an object) and track them through the rest of the clip the way ``Engine.step`` does: yields
    ``(t, BatchedTracker.propagate output)`` for every frame t >= 1, then writes frame t's memory."""
    tracker_model = model.tracker_model
    low_res = int(model.config.low_res_mask_size)
    masks = torch.from_numpy(clip.masks[0]).to(device, torch.float32)
    n = masks.shape[0]
    with torch.no_grad():  # the vision backbone is the detector's, trained before and frozen here
        vision = vision_features(model, list(clip.frames), device)
    # memories as features, not kept keys and values: those read a table of the weights cached for inference
    plain = Settings.default({"memory.keep_keys_values": "never"})
    bank = MemoryBank(n, **memory_bank_options(plain, tracker_model, device, torch.float32))
    tracker = BatchedTracker(tracker_model, bank)
    slots = bank.allocate(n)

    def features(t: int):
        one = type(vision)(last_hidden_state=vision.last_hidden_state[t : t + 1])
        return model.get_vision_features_for_tracker(one)

    feats, _ = features(0)
    start = F.interpolate(masks[:, None], size=(low_res, low_res), mode="area") >= 0.5
    tracker.remember(feats, slots, 0, tracker.from_masks(feats, start), np.ones(n, bool), binarize=True)
    for t in range(1, len(clip.frames)):
        feats, pos = features(t)
        out = tracker.propagate(feats, pos, slots, t)
        yield t, out
        present = torch.where(out["object_score_logits"] > 0, MEMORY_LOGIT, -MEMORY_LOGIT)
        tracker.remember(
            feats,
            slots,
            t,
            out,
            np.zeros(n, bool),
            binarize=False,
            high_res=out["low_res"].detach(),
            object_score_logits=present,
        )


def tracker_step(model, clip: TrackerClip, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts over one clip: mask BCE + dice on frames where an object is visible,
    BCE on the object-score logit on every frame after the first."""
    masks = torch.from_numpy(clip.masks).to(device, torch.float32)
    length = masks.shape[0]
    bce = dice = score = torch.zeros((), device=device)
    visible_total = 0
    for t, out in propagate_clip(model, clip, device):
        logits = out["object_score_logits"][:, 0]
        visible = masks[t].flatten(1).any(1)
        score = score + F.binary_cross_entropy_with_logits(logits.float(), visible.float())
        if visible.any():  # the masks before "no object" replaces them, so a wrong score still learns the mask
            up = upsample_logits(out["mask_logits"][visible, 0], tuple(masks.shape[-2:]))
            pixel_bce = F.binary_cross_entropy_with_logits(up, masks[t][visible], reduction="none")
            bce = bce + pixel_bce.flatten(1).mean(1).sum()
            dice = dice + dice_loss(up, masks[t][visible]).sum()
        visible_total += int(visible.sum())
    parts = {
        "trk_bce": bce / max(1, visible_total),
        "trk_dice": dice / max(1, visible_total),
        "trk_score": score / (length - 1),
    }
    loss = 5.0 * parts["trk_bce"] + 5.0 * parts["trk_dice"] + 1.0 * parts["trk_score"]
    return loss, {name: float(value.detach()) for name, value in parts.items()}
