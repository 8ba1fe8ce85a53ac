"""``sam3-random``: SAM 3 at its real size (``Sam3VideoConfig()`` defaults, ~860M parameters) with
seeded random weights, for speed measurements and export checks where the real weights are not
reachable. Same tokenizer scheme as ``tiny-random`` (a word hash over the CLIP vocabulary size).
"""

from __future__ import annotations

import torch

SAM3_IMAGE_SIZE = 1008
_PATCH = 14


def sam3_random_config(image_size: int = SAM3_IMAGE_SIZE):
    """``Sam3VideoConfig`` with the default (full) sizes, at input side ``image_size`` (a multiple of 14)."""
    from transformers import Sam3VideoConfig

    if image_size % _PATCH:
        raise ValueError(f"sam3-random image_size must be a multiple of {_PATCH}, got {image_size}")
    config = Sam3VideoConfig()
    if image_size != SAM3_IMAGE_SIZE:
        t = image_size // _PATCH
        sizes = [[4 * t, 4 * t], [2 * t, 2 * t], [t, t]]
        for vision in (config.detector_config.vision_config, config.tracker_config.vision_config):
            vision.backbone_config.image_size = image_size
            vision.backbone_feature_sizes = sizes
        config.tracker_config.image_size = image_size
        config.tracker_config.prompt_encoder_config.image_size = image_size
        config.low_res_mask_size = 4 * t
    return config


def build_sam3_random(seed: int = 0, image_size: int = SAM3_IMAGE_SIZE):
    """A full-size ``Sam3VideoModel`` with weights drawn from ``seed`` (CPU, fp32, eval; ~20 s to build)."""
    from transformers import Sam3VideoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3VideoModel(sam3_random_config(image_size))
    return model.eval()
