"""SAM 3's tracker for all objects at once: one memory-attention + mask-decoder pass per frame.

The reference (``Sam3TrackerVideoModel.forward``) loops over objects because each one has a different
number of memories. Here every object's memories come padded to a fixed size from the
``MemoryBank`` with a validity mask, and memory attention masks the padding out of the softmax, which
computes the same function as attending to the valid memories only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import (
    NO_OBJ_SCORE,
    get_1d_sine_pe,
)

from .memory_bank import MemoryBank
from .streams import tensors_of


class BatchedTracker:
    """Wraps a ``Sam3TrackerVideoModel`` (weights only) and a ``MemoryBank``."""

    def __init__(self, model, bank: MemoryBank):
        self.model = model
        self.bank = bank
        self.hidden = model.hidden_dim
        self.mem_dim = model.mem_dim
        self.feature_sizes = [tuple(s) for s in model.backbone_feature_sizes]
        self.pointer_norm = float(model.config.max_object_pointers_in_encoder - 1)
        self._rotation_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._constant_params = [*model.prompt_encoder.parameters(), *model.shared_image_embedding.parameters()]
        self._constants: tuple | None = None  # (parameter versions, sparse, dense, image positions)

    # -- per-frame features --------------------------------------------------------------------------
    def high_res_features(self, feats: list[torch.Tensor], n: int) -> list[torch.Tensor]:
        """The two high-resolution feature maps (HW, 1, C) as (n, C, h, w) views."""
        return [x.permute(1, 2, 0).reshape(1, x.shape[2], *s).expand(n, -1, -1, -1)
                for x, s in zip(feats[:-1], self.feature_sizes[:-1])]

    # -- propagation ----------------------------------------------------------------------------------
    def propagate(self, feats: list[torch.Tensor], pos: list[torch.Tensor], slots: list[int], frame: int) -> dict:
        """Track the objects in bank ``slots`` into ``frame``; returns low_res/high_res mask logits
        (N, 1, h, w), object_score_logits (N, 1) and object pointers (N, hidden)."""
        n = len(slots)
        pix_feat = self.memory_conditioned(feats[-1], pos[-1], slots, frame)
        return self._decode(self.high_res_features(feats, n) + [pix_feat], self.model._use_multimask(False, None))

    def memory_conditioned(self, feat: torch.Tensor, feat_pos: torch.Tensor, slots: list[int],
                           frame: int) -> torch.Tensor:
        """Current top-level features (HW, 1, C) fused with each object's memory -> (N, C, h, w)."""
        n = len(slots)
        h, w = self.feature_sizes[-1]
        memory, memory_pos, key_valid, num_pointer_tokens = self._memory_tokens(slots, frame, feat.dtype)
        fused = self._memory_attention(feat.transpose(0, 1), feat_pos.transpose(0, 1), memory, memory_pos, key_valid,
                                       num_pointer_tokens)
        return fused.transpose(1, 2).reshape(n, self.hidden, h, w)

    def _memory_tokens(self, slots: list[int], frame: int, dtype: torch.dtype):
        model, bank = self.model, self.bank
        features, temporal_index, feature_valid, pointers, offsets, pointer_valid = bank.gather(slots, frame)
        n, k, tokens, _ = features.shape
        spatial = features.to(dtype).reshape(n, k * tokens, self.mem_dim)
        tpe = model.memory_temporal_positional_encoding.view(-1, self.mem_dim)[temporal_index]  # (N, K, mem)
        spatial_pos = (bank.mem_pos[None, None] + tpe[:, :, None]).reshape(n, k * tokens, self.mem_dim)
        spatial_valid = feature_valid[:, :, None].expand(n, k, tokens).reshape(n, k * tokens)

        p = pointers.shape[1]
        if model.config.enable_temporal_pos_encoding_for_object_pointers:
            sine = get_1d_sine_pe(offsets.reshape(-1).float() / self.pointer_norm, dim=self.hidden)
            pointer_pos = model.temporal_positional_encoding_projection_layer(sine.to(pointers.dtype)).view(n, p, -1)
        else:
            pointer_pos = pointers.new_zeros(n, p, self.mem_dim)
        splits = self.hidden // self.mem_dim  # a pointer wider than a memory token becomes `splits` tokens
        pointer_tokens = pointers.reshape(n, p * splits, self.mem_dim)
        pointer_pos = pointer_pos.repeat_interleave(splits, dim=1)
        pointer_valid = pointer_valid.repeat_interleave(splits, dim=1)
        memory = torch.cat([spatial, pointer_tokens.to(dtype)], dim=1)
        memory_pos = torch.cat([spatial_pos, pointer_pos], dim=1).to(dtype)
        return memory, memory_pos, torch.cat([spatial_valid, pointer_valid], dim=1), p * splits

    def _memory_attention(self, query, query_pos, memory, memory_pos, key_valid, num_pointer_tokens):
        """``Sam3TrackerVideoMemoryAttention.forward`` over a batch, with padded memory keys masked.

        ``query``/``query_pos`` (1, HW, C) are the frame's features, the same for every object: until the
        first cross-attention reads an object's memory, the reference computes identical rows once per
        object; here they are computed once (the first layer's self-attention and its cross-attention
        queries), then broadcast."""
        attention = self.model.memory_attention
        output = query + 0.1 * query_pos
        rotation = self._rotations(output, memory.shape[1] - num_pointer_tokens, num_pointer_tokens)
        output = output.unsqueeze(1)
        memory, memory_pos = memory.unsqueeze(1), memory_pos.unsqueeze(1)
        mask = key_valid[:, None, None, :]  # (N, heads, queries, keys), broadcast
        for layer in attention.layers:
            x = layer.layer_norm1(output)
            output = output + _rope_attention(layer.self_attn, x, x, x, (rotation[0], rotation[0]), None)
            x = layer.layer_norm2(output)  # (1, ...) in the first layer: one row serves every object
            output = output + _rope_attention(layer.cross_attn_image, x, memory + memory_pos, memory, rotation, mask)
            x = layer.layer_norm3(output)
            output = output + layer.linear2(layer.activation(layer.linear1(x)))
        return attention.layer_norm(output)[:, 0]

    def _rotations(self, query: torch.Tensor, spatial_keys: int, num_pointer_tokens: int):
        """RoPE rotations of the frame's tokens and of the memory keys (fixed positions: cached by the
        number of memory frames and pointer tokens, a handful of shapes)."""
        tokens = query.shape[-2]
        key = (spatial_keys // tokens, num_pointer_tokens, query.device)
        if key not in self._rotation_cache:
            attention = self.model.memory_attention
            rotation = rope_rotation(*attention.rotary_emb(query, attention.position_ids))
            self._rotation_cache[key] = (rotation, key_rotation(rotation, spatial_keys // tokens, num_pointer_tokens))
        return self._rotation_cache[key]

    # -- new objects and clicks -------------------------------------------------------------------------
    def from_masks(self, feats: list[torch.Tensor], masks: torch.Tensor) -> dict:
        """Start objects from binary masks (N, 1, h, w): ``Sam3TrackerVideoModel._use_mask_as_output``
        for a batch (the reference calls it one object at a time; its pointer broadcasting assumes N=1)."""
        model = self.model
        n = masks.shape[0]
        h, w = self.feature_sizes[-1]
        pix_feat = feats[-1].permute(1, 2, 0).reshape(1, self.hidden, h, w).expand(n, -1, -1, -1)
        mask = masks.to(pix_feat.dtype)
        if mask.shape[-2:] != (model.image_size, model.image_size):
            mask = F.interpolate(mask.float(), size=(model.image_size, model.image_size), align_corners=False,
                                 mode="bilinear", antialias=True).to(pix_feat.dtype)
        high_res = mask * 20.0 - 10.0  # the reference's out_scale / out_bias: logits of a given mask
        low_res = F.interpolate(high_res.float(), size=model.prompt_encoder.mask_input_size, align_corners=False,
                                mode="bilinear", antialias=True).to(pix_feat.dtype)
        pointer = self._decode(self.high_res_features(feats, n) + [pix_feat], True,
                               masks=model.mask_downsample(mask))["pointers"]
        appearing = masks.flatten(1).any(dim=1, keepdim=True).to(pix_feat.dtype)  # (N, 1)
        pointer = appearing * pointer + (1 - appearing) * model.no_object_pointer
        return {"low_res": low_res, "high_res": high_res, "object_score_logits": 20.0 * appearing - 10.0,
                "pointers": pointer}

    def from_points(self, feats, pos, slot: int | None, frame: int, points: torch.Tensor,
                    labels: torch.Tensor, box: torch.Tensor | None) -> dict:
        """One object from clicks (1, 1, P, 2) / labels (1, 1, P) / box (1, 1, 4) in model pixels:
        a new object (``slot`` None, no memory) or a refinement of ``slot`` (memory-conditioned)."""
        h, w = self.feature_sizes[-1]
        if slot is None:
            pix_feat = (feats[-1] + self.model.no_memory_embedding).permute(1, 2, 0).reshape(1, self.hidden, h, w)
        else:
            pix_feat = self.memory_conditioned(feats[-1], pos[-1], [slot], frame)
        multimask = self.model._use_multimask(slot is None, {"point_labels": labels})
        return self._decode(self.high_res_features(feats, 1) + [pix_feat], multimask, points, labels, box)

    def _decode(self, embeddings: list[torch.Tensor], multimask: bool, points=None, labels=None, boxes=None,
                masks=None) -> dict:
        """``Sam3TrackerVideoModel._single_frame_forward`` (from image embeddings) for a batch of N
        objects: the reference picks the best of several masks with indexing that is only right for N=1.
        ``mask_logits`` are the chosen masks before objects scored absent get the "no object" logit."""
        model = self.model
        n = embeddings[-1].shape[0]
        if masks is not None and masks.shape[-2:] != model.prompt_encoder.mask_input_size:
            masks = F.interpolate(masks.float(), size=model.prompt_encoder.mask_input_size, align_corners=False,
                                  mode="bilinear", antialias=True).to(masks.dtype)
        no_clicks, dense_empty, image_pe = self._constant_inputs(embeddings[-1])
        if points is None and boxes is None:  # no clicks: one padding point, the same prompt for every object
            sparse = no_clicks.expand(n, *no_clicks.shape[1:])
            dense = (dense_empty.expand(n, *dense_empty.shape[1:]) if masks is None
                     else model.prompt_encoder.mask_embed(masks))
        else:
            sparse, dense = model.prompt_encoder(input_points=points, input_labels=labels, input_boxes=boxes,
                                                 input_masks=masks)
        low, iou, tokens, object_logits = model.mask_decoder(
            image_embeddings=embeddings[-1],
            image_positional_embeddings=image_pe.expand(n, -1, -1, -1),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
            high_resolution_features=embeddings[:-1],
        )
        low, iou, tokens, object_logits = low[:, 0], iou[:, 0], tokens[:, 0], object_logits.reshape(n, 1)
        if multimask:
            best = iou.argmax(dim=-1)
            rows = torch.arange(n, device=low.device)
            low = low[rows, best]
            token = tokens[rows, best] if tokens.shape[1] > 1 else tokens[:, 0]
        else:
            low, token = low[:, 0], tokens[:, 0]
        mask_logits = low[:, None]  # before "no object" replaces them: what training supervises
        appearing = object_logits > 0
        low = torch.where(appearing[:, :, None, None], mask_logits, NO_OBJ_SCORE)
        high = F.interpolate(low.float(), size=(model.image_size, model.image_size), mode="bilinear",
                             align_corners=False).to(low.dtype)
        pointer = model.object_pointer_proj(token)
        weight = appearing.to(pointer.dtype)
        pointer = weight * pointer + (1 - weight) * model.no_object_pointer
        return {"low_res": low, "high_res": high, "object_score_logits": object_logits, "pointers": pointer,
                "mask_logits": mask_logits}

    def _constant_inputs(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prompt of no clicks (sparse, dense) and the image-wide positional embedding: functions of the
        weights only, so computed once and again only after a weight changed (training updates them in
        place, which bumps their version); with autograd on they are computed afresh for the graph."""
        versions = tuple(p._version for p in self._constant_params)
        if torch.is_grad_enabled() or self._constants is None or self._constants[0] != versions:
            points = like.new_zeros(1, 1, 1, 2)
            labels = -torch.ones(1, 1, 1, dtype=torch.int32, device=points.device)
            sparse, dense = self.model.prompt_encoder(input_points=points, input_labels=labels, input_boxes=None,
                                                      input_masks=None)
            constants = (sparse, dense, self.model.get_image_wide_positional_embeddings())
            if torch.is_grad_enabled():
                return constants
            self._constants = (versions, *constants)
        return self._constants[1:]

    # -- memory ---------------------------------------------------------------------------------------------
    def encode(self, feats: list[torch.Tensor], high_res: torch.Tensor, object_score_logits: torch.Tensor,
               binarize: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory features (N, tokens, mem_dim) bf16 and their positional encoding (tokens, mem_dim).

        ``Sam3TrackerVideoModel._encode_new_memory`` for a batch, with the projection of the frame's
        features (the same image for every object) computed once instead of once per object."""
        model, encoder = self.model, self.model.memory_encoder
        n = high_res.shape[0]
        h, w = self.feature_sizes[-1]
        size = tuple(4 * s for s in model.prompt_encoder.mask_input_size)
        masks = high_res
        if masks.shape[2:] != size:
            masks = F.interpolate(masks.float(), size=size, align_corners=False, mode="bilinear",
                                  antialias=True).to(high_res.dtype)
        masks = (masks > 0).to(masks.dtype) if binarize and not model.training else torch.sigmoid(masks)
        masks = masks * model.config.sigmoid_scale_for_mem_enc + model.config.sigmoid_bias_for_mem_enc
        image = encoder.feature_projection(feats[-1].permute(1, 2, 0).reshape(1, self.hidden, h, w))
        features = encoder.projection(encoder.memory_fuser(image + downsample_masks(encoder.mask_downsampler, masks)))
        # shape-only and cached by shape: one row serves every object, whatever their number
        pos = encoder.position_encoding(torch.Size((1, *features.shape[1:])), features.device, features.dtype)
        if model.occlusion_spatial_embedding_parameter is not None:  # a "not visible" embedding where absent
            appearing = (object_score_logits.reshape(n, 1, 1) > 0).float()
            features = features + (1 - appearing[..., None]) * model.occlusion_spatial_embedding_parameter[
                ..., None, None].expand(*features.shape)
        features = features.to(torch.bfloat16).flatten(2).transpose(1, 2)
        return features, pos[0].to(high_res.dtype).flatten(1).transpose(0, 1)

    def remember(self, feats, slots: list[int], frame: int, out: dict, conditioning: np.ndarray,
                 binarize: bool, high_res: torch.Tensor | None = None, object_score_logits=None) -> None:
        """Encode and store frame ``frame``'s memory for bank ``slots`` (masks default to ``out``'s);
        ``conditioning`` (N,) bool marks entries that become conditioning memory."""
        if not slots:
            return
        high_res = out["high_res"] if high_res is None else high_res
        scores = out["object_score_logits"] if object_score_logits is None else object_score_logits
        # on the bank's stream: overlaps the next frame's encoder; the next read of the bank waits for it
        with self.bank.writer.run(tensors_of(feats, out, high_res, scores)):
            features, pos = self.encode(feats, high_res, scores, binarize)
            self.bank.write(slots, frame, features, out["pointers"], pos, conditioning)


def downsample_masks(downsampler, masks: torch.Tensor) -> torch.Tensor:
    """``Sam3TrackerVideoMaskDownSampler.forward`` with its channels-first LayerNorms computed over the
    channel dim in place (``channels_first_layer_norm``) instead of permuted to channels-last."""
    for layer in downsampler.layers:
        masks = layer.activation(channels_first_layer_norm(layer.conv(masks), layer.layer_norm))
    return downsampler.final_conv(masks)


def channels_first_layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over dim 1 of (N, C, H, W) with ``norm``'s weights. transformers permutes to (N, H, W, C)
    and normalizes rows of C: for the mask downsampler's first layers (C = 4 or 16 at the largest
    resolutions) that is a copy plus a kernel vectorized over 4 values, several times slower than these
    few elementwise passes over the channels."""
    centered = x - x.mean(1, keepdim=True)
    scale = torch.rsqrt((centered * centered).mean(1, keepdim=True) + norm.eps)
    return torch.addcmul(norm.bias[:, None, None], centered * scale, norm.weight[:, None, None])


def rope_rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' 2D RoPE angles (tokens, head_dim), each pair's cos/sin repeated, as one complex
    rotation per pair (tokens, head_dim / 2)."""
    rotation = torch.complex(cos.unflatten(-1, (-1, 2))[..., 0].float(), sin.unflatten(-1, (-1, 2))[..., 0].float())
    return rotation.reshape(-1, rotation.shape[-1])  # leading dims of size 1


def key_rotation(rotation: torch.Tensor, frames: int, num_exclude: int) -> torch.Tensor:
    """The rotation of memory keys: the per-position ``rotation`` (tokens, pairs) for each of ``frames``
    memory frames (``apply_rotary_pos_emb_2d``'s ``repeat_freqs_k``), then 1 (no rotation) for the
    ``num_exclude`` object-pointer tokens, so one product rotates every key without slicing."""
    return torch.cat([rotation.repeat(frames, 1), rotation.new_ones(num_exclude, rotation.shape[-1])])


def _rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """RoPE on ``x`` (..., L, heads, head_dim) with ``rotation`` (L, head_dim / 2): ``x * cos +
    rotate_pairwise(x) * sin`` computed in fp32 as (even + i odd) * (cos + i sin), cast back to x's dtype
    as the reference does. Rotating before the heads are transposed keeps the pairs contiguous (no copy)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation[:, None]).flatten(-2).type_as(x)


def _rope_attention(attn, query, key, value, rotations: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None):
    """``Sam3TrackerVideoRoPEAttention.forward`` with an optional boolean key mask (True = attend);
    ``rotations`` are the query's and the keys' (``key_rotation``) RoPE rotations."""
    b, pb = key.shape[:2]  # a query batch of 1 is broadcast over the keys' batch
    heads = (attn.num_attention_heads, attn.head_dim)
    q = _rotate(attn.q_proj(query).unflatten(-1, heads), rotations[0])
    k = _rotate(attn.k_proj(key).unflatten(-1, heads), rotations[1])
    v = attn.v_proj(value).unflatten(-1, heads)
    q, k, v = (x.flatten(0, 1).transpose(1, 2) for x in (q, k, v))  # (batch, heads, L, head_dim)
    q = q.expand(b * pb, *q.shape[1:])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling)
    out = out.transpose(1, 2).reshape(b, pb, -1, attn.num_attention_heads * attn.head_dim)
    return attn.o_proj(out)
