"""One builder for the small SAM 3 configurations this project defines (``tiny-random``, ``toy``): the real
transformers SAM 3 video architecture, every block present, with the sizes that ``SmallSizes`` names."""

from __future__ import annotations

from dataclasses import dataclass

PATCH = 14
HIDDEN = 128  # fpn_hidden_size: a multiple of 64 and > 64 (transformers' SAM 3 classes require it)
MAX_TOKENS = 32  # the loader pads every phrase to 32 tokens


@dataclass(frozen=True)
class SmallSizes:
    """The sizes that differ between the small configurations; every other size is ``HIDDEN``."""

    image_size: int  # a multiple of PATCH
    vit_width: int
    vit_layers: int
    vit_heads: int
    global_attention: tuple[int, ...]  # ViT layers with global attention (the others: windowed)
    vocab_size: int
    bos_token_id: int
    eos_token_id: int
    text_width: int
    text_layers: int
    heads: int  # attention heads of the geometry encoder, DETR encoder/decoder and both mask decoders
    mlp: int  # their feed-forward width, and the memory attention's and fuser's
    detr_layers: int  # DETR encoder and decoder layers each
    queries: int  # DETR decoder queries
    iou_head: int  # the tracker mask decoder's IoU head width


def small_config(s: SmallSizes):
    """The ``Sam3VideoConfig`` of ``s``."""
    from transformers import Sam3VideoConfig

    if s.image_size % PATCH:
        raise ValueError(f"image_size must be a multiple of {PATCH}, got {s.image_size}")
    t = s.image_size // PATCH
    vision = dict(
        model_type="sam3_vision_model",
        fpn_hidden_size=HIDDEN,
        backbone_feature_sizes=[[4 * t, 4 * t], [2 * t, 2 * t], [t, t]],
        backbone_config=dict(
            model_type="sam3_vit_model",
            hidden_size=s.vit_width,
            intermediate_size=2 * s.vit_width,
            num_hidden_layers=s.vit_layers,
            num_attention_heads=s.vit_heads,
            image_size=s.image_size,
            patch_size=PATCH,
            window_size=t // 2,
            global_attn_indexes=list(s.global_attention),
            pretrain_image_size=s.image_size,
        ),
    )
    blocks = dict(hidden_size=HIDDEN, num_attention_heads=s.heads, intermediate_size=s.mlp)
    detector = dict(
        model_type="sam3",
        vision_config=vision,
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=s.vocab_size,
            hidden_size=s.text_width,
            intermediate_size=2 * s.text_width,
            projection_dim=s.text_width,
            num_hidden_layers=s.text_layers,
            num_attention_heads=2,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=s.bos_token_id,
            eos_token_id=s.eos_token_id,
            pad_token_id=0,
        ),
        geometry_encoder_config=dict(model_type="sam3_geometry_encoder", num_layers=1, **blocks),
        detr_encoder_config=dict(model_type="sam3_detr_encoder", num_layers=s.detr_layers, **blocks),
        detr_decoder_config=dict(
            model_type="sam3_detr_decoder", num_layers=s.detr_layers, num_queries=s.queries, **blocks
        ),
        mask_decoder_config=dict(model_type="sam3_mask_decoder", hidden_size=HIDDEN, num_attention_heads=s.heads),
    )
    tracker = dict(
        model_type="sam3_tracker_video",
        vision_config=vision,
        prompt_encoder_config=dict(
            model_type="sam3_tracker_video_prompt_encoder",
            hidden_size=HIDDEN,
            image_size=s.image_size,
            patch_size=PATCH,
        ),
        mask_decoder_config=dict(
            model_type="sam3_tracker_video_mask_decoder",
            hidden_size=HIDDEN,
            mlp_dim=s.mlp,
            num_attention_heads=s.heads,
            iou_head_hidden_dim=s.iou_head,
        ),
        image_size=s.image_size,
        memory_attention_hidden_size=HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=s.mlp,
        memory_encoder_hidden_size=HIDDEN,
        memory_encoder_output_channels=64,  # memory attention hard-codes kv_in_dim=64
        mask_downsampler_embed_dim=HIDDEN,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=HIDDEN,
        memory_fuser_intermediate_dim=s.mlp,
    )
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker, low_res_mask_size=4 * t)
