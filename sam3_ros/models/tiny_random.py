"""``tiny-random``: the SAM 3 video architecture at toy size with seeded random weights.

For tests and CPU demos: same modules as ``facebook/sam3`` (detector with presence token, tracker with
memory attention), 112 px input, 16 detector queries, one layer per block. The text tokenizer is a
seeded word hash (no vocabulary file exists for random weights).
"""

from __future__ import annotations

import zlib

import torch

TINY_IMAGE_SIZE = 112
_PATCH = 14
_HIDDEN = 128  # fpn_hidden_size: a multiple of 64 and > 64 (transformers' SAM 3 classes require it)
_VOCAB = 1000
_MAX_TOKENS = 32


def tiny_random_config(image_size: int = TINY_IMAGE_SIZE):
    """The ``Sam3VideoConfig`` of the tiny model (``image_size`` a multiple of 14)."""
    from transformers import Sam3VideoConfig

    if image_size % _PATCH:
        raise ValueError(f"tiny-random image_size must be a multiple of {_PATCH}, got {image_size}")
    t = image_size // _PATCH
    vision = dict(
        model_type="sam3_vision_model",
        fpn_hidden_size=_HIDDEN,
        backbone_feature_sizes=[[4 * t, 4 * t], [2 * t, 2 * t], [t, t]],
        backbone_config=dict(
            model_type="sam3_vit_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=_PATCH,
            window_size=t // 2,
            global_attn_indexes=[1],
            pretrain_image_size=image_size,
        ),
    )
    detector = dict(
        model_type="sam3",
        vision_config=vision,
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=_VOCAB,
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=_MAX_TOKENS,
            bos_token_id=_VOCAB - 2,
            eos_token_id=_VOCAB - 1,
            pad_token_id=0,
        ),
        geometry_encoder_config=dict(
            model_type="sam3_geometry_encoder",
            hidden_size=_HIDDEN,
            num_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        detr_encoder_config=dict(
            model_type="sam3_detr_encoder",
            hidden_size=_HIDDEN,
            num_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        detr_decoder_config=dict(
            model_type="sam3_detr_decoder",
            hidden_size=_HIDDEN,
            num_layers=1,
            num_queries=16,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        mask_decoder_config=dict(model_type="sam3_mask_decoder", hidden_size=_HIDDEN, num_attention_heads=2),
    )
    tracker = dict(
        model_type="sam3_tracker_video",
        vision_config=vision,
        prompt_encoder_config=dict(
            model_type="sam3_tracker_video_prompt_encoder",
            hidden_size=_HIDDEN,
            image_size=image_size,
            patch_size=_PATCH,
        ),
        mask_decoder_config=dict(
            model_type="sam3_tracker_video_mask_decoder",
            hidden_size=_HIDDEN,
            mlp_dim=64,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
        ),
        image_size=image_size,
        memory_attention_hidden_size=_HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_encoder_hidden_size=_HIDDEN,
        memory_encoder_output_channels=64,  # memory attention hard-codes kv_in_dim=64
        mask_downsampler_embed_dim=_HIDDEN,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=_HIDDEN,
        memory_fuser_intermediate_dim=64,
    )
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker, low_res_mask_size=4 * t)


def build_tiny_random(seed: int = 0, image_size: int = TINY_IMAGE_SIZE):
    """A ``Sam3VideoModel`` with the tiny configuration and weights drawn from ``seed`` (CPU, fp32, eval)."""
    from transformers import Sam3VideoModel
    from transformers.utils import logging as hf_logging

    config = tiny_random_config(image_size)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the tiny vocabulary triggers a harmless bos/eos range warning
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Sam3VideoModel(config)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval()


class HashTokenizer:
    """Deterministic word-hash tokenizer for the random-weight model: ``<bos> words... <eos> <pad>...``."""

    def __init__(self, vocab_size: int = _VOCAB, max_length: int = _MAX_TOKENS):
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.bos, self.eos, self.pad = vocab_size - 2, vocab_size - 1, 0

    def __call__(self, phrases: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, (P, L) each, padded to the longest phrase."""
        rows = []
        for phrase in phrases:
            words = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in phrase.lower().split()]
            rows.append([self.bos, *words[: self.max_length - 2], self.eos])
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}
