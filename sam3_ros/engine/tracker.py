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
        self.max_pointers = int(model.config.max_object_pointers_in_encoder)
        self._rotation_cache: dict[torch.device, torch.Tensor] = {}
        self._key_rotation_cache: dict[tuple, torch.Tensor] = {}
        self._temporal_cache: tuple | None = None  # (weight versions and dtype, per-layer temporal keys)
        self._constant_params = [*model.prompt_encoder.parameters(), *model.shared_image_embedding.parameters()]
        self._constants: tuple | None = None  # (parameter versions, sparse, dense, image positions)

    # -- per-frame features --------------------------------------------------------------------------
    def high_res_features(self, feats: list[torch.Tensor], n: int) -> list[torch.Tensor]:
        """The two high-resolution feature maps (HW, 1, C) as (n, C, h, w) views."""
        return [
            x.permute(1, 2, 0).reshape(1, x.shape[2], *s).expand(n, -1, -1, -1)
            for x, s in zip(feats[:-1], self.feature_sizes[:-1])
        ]

    # -- propagation ----------------------------------------------------------------------------------
    def propagate(self, feats: list[torch.Tensor], pos: list[torch.Tensor], slots: list[int], frame: int) -> dict:
        """Track the objects in bank ``slots`` into ``frame``; returns low_res/high_res mask logits
        (N, 1, h, w), object_score_logits (N, 1) and object pointers (N, hidden)."""
        n = len(slots)
        pix_feat = self.memory_conditioned(feats[-1], pos[-1], slots, frame)
        return self._decode(self.high_res_features(feats, n) + [pix_feat], self.model._use_multimask(False, None))

    def memory_conditioned(
        self, feat: torch.Tensor, feat_pos: torch.Tensor, slots: list[int], frame: int
    ) -> torch.Tensor:
        """Current top-level features (HW, 1, C) fused with each object's memory -> (N, C, h, w)."""
        n = len(slots)
        h, w = self.feature_sizes[-1]
        keys_values, key_valid = self._memory_keys_values(slots, frame, feat.dtype)
        fused = self._memory_attention(feat.transpose(0, 1), feat_pos.transpose(0, 1), keys_values, key_valid)
        return fused.transpose(1, 2).reshape(n, self.hidden, h, w)

    def _memory_keys_values(self, slots: list[int], frame: int, dtype: torch.dtype):
        """Per memory-attention layer, the keys (RoPE applied) and values (N, L, width) of the objects'
        memories: spatial memories, then object pointers; and which of the L keys are valid (N, L)."""
        model, bank, layers = self.model, self.bank, self.model.memory_attention.layers
        features, temporal_index, feature_valid, pointers, offsets, pointer_valid = bank.gather(slots, frame)
        n, k = features.shape[:2]
        tokens = features.shape[-2]
        spatial_valid = feature_valid[:, :, None].expand(n, k, tokens).reshape(n, k * tokens)

        p = pointers.shape[1]
        if model.config.enable_temporal_pos_encoding_for_object_pointers:
            sine = get_1d_sine_pe(offsets.reshape(-1).float() / self.pointer_scale(frame), dim=self.hidden)
            pointer_pos = model.temporal_positional_encoding_projection_layer(sine.to(pointers.dtype)).view(n, p, -1)
        else:
            pointer_pos = pointers.new_zeros(n, p, self.mem_dim)
        splits = self.hidden // self.mem_dim  # a pointer wider than a memory token becomes `splits` tokens
        pointer_tokens = pointers.reshape(n, p * splits, self.mem_dim).to(dtype)
        pointer_pos = pointer_pos.repeat_interleave(splits, dim=1).to(dtype)
        key_valid = torch.cat([spatial_valid, pointer_valid.repeat_interleave(splits, dim=1)], dim=1)

        if bank.derived_entries:  # keys and values kept per entry: add the temporal encoding of its age
            temporal = self._temporal_keys(dtype)
            keys_values = []
            for i, layer in enumerate(layers):
                attention = layer.cross_attn_image
                keys = (features[:, :, 2 * i] + temporal[i][temporal_index]).reshape(n, k * tokens, -1)
                keys = torch.cat([keys, attention.k_proj(pointer_tokens + pointer_pos)], dim=1)
                values = torch.cat(
                    [features[:, :, 2 * i + 1].reshape(n, k * tokens, -1), attention.v_proj(pointer_tokens)], dim=1
                )
                keys_values.append((keys, values))
            return keys_values, key_valid

        spatial = features.to(dtype).reshape(n, k * tokens, self.mem_dim)
        tpe = model.memory_temporal_positional_encoding.view(-1, self.mem_dim)[temporal_index]  # (N, K, mem)
        spatial_pos = (bank.mem_pos[None, None] + tpe[:, :, None]).reshape(n, k * tokens, self.mem_dim)
        memory = torch.cat([spatial, pointer_tokens], dim=1)
        keys = memory + torch.cat([spatial_pos, pointer_pos], dim=1).to(dtype)
        rotation = self._key_rotation(memory, k, p * splits)
        return [_keys_values(layer.cross_attn_image, keys, memory, rotation) for layer in layers], key_valid

    def pointer_scale(self, frame: int) -> float:
        """What object-pointer frame offsets are divided by before their sine encoding, when tracking into
        ``frame`` (the stream's ``frame + 1``-th): ``Sam3VideoModel`` passes the frames received so far to its
        tracker, which divides by ``min(frames, max_object_pointers_in_encoder) - 1``. At least 1: on the first
        frame (a click refinement there) the only offset is 0."""
        return float(max(min(frame + 1, self.max_pointers) - 1, 1))

    def memory_keys_values(self, features: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """What a bank with derived entries keeps of memory features (N, tokens, mem_dim) with positions
        (tokens, mem_dim): per memory-attention layer its keys (RoPE applied) and values, (N, 2 x layers,
        tokens, width). The keys leave out the temporal encoding, which depends on the entry's age when it
        is read (``_temporal_keys``): projection and rotation are linear, so adding it then is the same."""
        memory = features.to(pos.dtype)  # the bf16 features, as attention reads them
        rotation = self._rotation(memory)
        out = []
        for layer in self.model.memory_attention.layers:
            out.extend(_keys_values(layer.cross_attn_image, memory + pos, memory, rotation))
        return torch.stack(out, dim=1)

    def _temporal_keys(self, dtype: torch.dtype) -> list[torch.Tensor]:
        """Per layer, the key of each temporal encoding row (no bias) rotated at every position: (rows,
        tokens, width), indexed by an entry's temporal index. Functions of the weights: cached, recomputed
        after a weight changed."""
        attention = self.model.memory_attention
        encoding = self.model.memory_temporal_positional_encoding
        params = [encoding, *(layer.cross_attn_image.k_proj.weight for layer in attention.layers)]
        key = (tuple(p._version for p in params), dtype)
        if self._temporal_cache is None or self._temporal_cache[0] != key:
            rows = encoding.view(-1, self.mem_dim).to(dtype)
            h, w = self.feature_sizes[-1]
            rotation = self._rotation(rows)
            tables = []
            for layer in attention.layers:
                projection = layer.cross_attn_image.k_proj
                keys = F.linear(rows, projection.weight.to(dtype))[:, None].expand(-1, h * w, -1)
                heads = (layer.cross_attn_image.num_attention_heads, layer.cross_attn_image.head_dim)
                tables.append(_rotate(keys.unflatten(-1, heads), rotation).flatten(-2))
            self._temporal_cache = (key, tables)
        return self._temporal_cache[1]

    def _memory_attention(self, query, query_pos, keys_values, key_valid):
        """``Sam3TrackerVideoMemoryAttention.forward`` over a batch, with padded memory keys masked.

        ``query``/``query_pos`` (1, HW, C) are the frame's features, the same for every object: until the
        first cross-attention reads an object's memory, the reference computes identical rows once per
        object; here they are computed once (the first layer's self-attention and its cross-attention
        queries), then broadcast. ``keys_values``: per layer the memory's (keys, values) (N, L, width)."""
        attention = self.model.memory_attention
        output = query + 0.1 * query_pos
        rotation = self._rotation(output)
        mask = key_valid[:, None, None, :]  # (N, heads, queries, keys), broadcast
        for layer, (keys, values) in zip(attention.layers, keys_values):
            x = layer.layer_norm1(output)  # (1, ...) in the first layer: one row serves every object
            output = output + _attend(layer.self_attn, x, *_keys_values(layer.self_attn, x, x, rotation), rotation)
            x = layer.layer_norm2(output)
            output = output + _attend(layer.cross_attn_image, x, keys, values, rotation, mask)
            x = layer.layer_norm3(output)
            output = output + layer.linear2(layer.activation(layer.linear1(x)))
        return attention.layer_norm(output)

    def _rotation(self, like: torch.Tensor) -> torch.Tensor:
        """RoPE rotation of the top-level grid's positions (tokens, head_dim / 2): the frame's tokens, and
        each memory frame's (fixed positions: cached per device)."""
        if like.device not in self._rotation_cache:
            attention = self.model.memory_attention
            self._rotation_cache[like.device] = rope_rotation(*attention.rotary_emb(like, attention.position_ids))
        return self._rotation_cache[like.device]

    def _key_rotation(self, like: torch.Tensor, frames: int, pointer_tokens: int) -> torch.Tensor:
        """``key_rotation`` of ``frames`` memory frames and ``pointer_tokens`` pointer tokens (cached by
        those counts: a handful of shapes)."""
        key = (frames, pointer_tokens, like.device)
        if key not in self._key_rotation_cache:
            self._key_rotation_cache[key] = key_rotation(self._rotation(like), frames, pointer_tokens)
        return self._key_rotation_cache[key]

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
            mask = F.interpolate(
                mask.float(),
                size=(model.image_size, model.image_size),
                align_corners=False,
                mode="bilinear",
                antialias=True,
            ).to(pix_feat.dtype)
        high_res = mask * 20.0 - 10.0  # the reference's out_scale / out_bias: logits of a given mask
        low_res = F.interpolate(
            high_res.float(),
            size=model.prompt_encoder.mask_input_size,
            align_corners=False,
            mode="bilinear",
            antialias=True,
        ).to(pix_feat.dtype)
        pointer = self._decode(self.high_res_features(feats, n) + [pix_feat], True, masks=model.mask_downsample(mask))[
            "pointers"
        ]
        appearing = masks.flatten(1).any(dim=1, keepdim=True).to(pix_feat.dtype)  # (N, 1)
        pointer = appearing * pointer + (1 - appearing) * model.no_object_pointer
        return {
            "low_res": low_res,
            "high_res": high_res,
            "object_score_logits": 20.0 * appearing - 10.0,
            "pointers": pointer,
        }

    def from_points(
        self,
        feats,
        pos,
        slot: int | None,
        frame: int,
        points: torch.Tensor,
        labels: torch.Tensor,
        box: torch.Tensor | None,
    ) -> dict:
        """One object from clicks (1, 1, P, 2) / labels (1, 1, P) / box (1, 1, 4) in model pixels:
        a new object (``slot`` None, no memory) or a refinement of ``slot`` (memory-conditioned)."""
        h, w = self.feature_sizes[-1]
        if slot is None:
            pix_feat = (feats[-1] + self.model.no_memory_embedding).permute(1, 2, 0).reshape(1, self.hidden, h, w)
        else:
            pix_feat = self.memory_conditioned(feats[-1], pos[-1], [slot], frame)
        multimask = self.model._use_multimask(slot is None, {"point_labels": labels})
        return self._decode(self.high_res_features(feats, 1) + [pix_feat], multimask, points, labels, box)

    def _decode(
        self, embeddings: list[torch.Tensor], multimask: bool, points=None, labels=None, boxes=None, masks=None
    ) -> dict:
        """``Sam3TrackerVideoModel._single_frame_forward`` (from image embeddings) for a batch of N
        objects: the reference picks the best of several masks with indexing that is only right for N=1.
        ``mask_logits`` are the chosen masks before objects scored absent get the "no object" logit."""
        model = self.model
        n = embeddings[-1].shape[0]
        if masks is not None and masks.shape[-2:] != model.prompt_encoder.mask_input_size:
            masks = F.interpolate(
                masks.float(),
                size=model.prompt_encoder.mask_input_size,
                align_corners=False,
                mode="bilinear",
                antialias=True,
            ).to(masks.dtype)
        no_clicks, dense_empty, image_pe = self._constant_inputs(embeddings[-1])
        if points is None and boxes is None:  # no clicks: one padding point, the same prompt for every object
            sparse = no_clicks.expand(n, *no_clicks.shape[1:])
            dense = (
                dense_empty.expand(n, *dense_empty.shape[1:])
                if masks is None
                else model.prompt_encoder.mask_embed(masks)
            )
        else:
            sparse, dense = model.prompt_encoder(
                input_points=points, input_labels=labels, input_boxes=boxes, input_masks=masks
            )
        low, iou, tokens, object_logits = model.mask_decoder(
            image_embeddings=embeddings[-1],
            image_positional_embeddings=image_pe.expand(n, -1, -1, -1),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
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
        high = F.interpolate(
            low.float(), size=(model.image_size, model.image_size), mode="bilinear", align_corners=False
        ).to(low.dtype)
        pointer = model.object_pointer_proj(token)
        weight = appearing.to(pointer.dtype)
        pointer = weight * pointer + (1 - weight) * model.no_object_pointer
        return {
            "low_res": low,
            "high_res": high,
            "object_score_logits": object_logits,
            "pointers": pointer,
            "mask_logits": mask_logits,
        }

    def _constant_inputs(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prompt of no clicks (sparse, dense) and the image-wide positional embedding: functions of the
        weights only, so computed once and again only after a weight changed (training updates them in
        place, which bumps their version); with autograd on they are computed afresh for the graph."""
        versions = tuple(p._version for p in self._constant_params)
        if torch.is_grad_enabled() or self._constants is None or self._constants[0] != versions:
            points = like.new_zeros(1, 1, 1, 2)
            labels = -torch.ones(1, 1, 1, dtype=torch.int32, device=points.device)
            sparse, dense = self.model.prompt_encoder(
                input_points=points, input_labels=labels, input_boxes=None, input_masks=None
            )
            constants = (sparse, dense, self.model.get_image_wide_positional_embeddings())
            if torch.is_grad_enabled():
                return constants
            self._constants = (versions, *constants)
        return self._constants[1:]

    # -- memory ---------------------------------------------------------------------------------------------
    def encode(
        self, feats: list[torch.Tensor], high_res: torch.Tensor, object_score_logits: torch.Tensor, binarize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory features (N, tokens, mem_dim) bf16 and their positional encoding (tokens, mem_dim).

        ``Sam3TrackerVideoModel._encode_new_memory`` for a batch, with the projection of the frame's
        features (the same image for every object) computed once instead of once per object."""
        model, encoder = self.model, self.model.memory_encoder
        n = high_res.shape[0]
        h, w = self.feature_sizes[-1]
        size = tuple(4 * s for s in model.prompt_encoder.mask_input_size)
        masks = high_res
        if masks.shape[2:] != size:
            masks = F.interpolate(masks.float(), size=size, align_corners=False, mode="bilinear", antialias=True).to(
                high_res.dtype
            )
        masks = (masks > 0).to(masks.dtype) if binarize and not model.training else torch.sigmoid(masks)
        masks = masks * model.config.sigmoid_scale_for_mem_enc + model.config.sigmoid_bias_for_mem_enc
        image = encoder.feature_projection(feats[-1].permute(1, 2, 0).reshape(1, self.hidden, h, w))
        features = encoder.projection(encoder.memory_fuser(image + downsample_masks(encoder.mask_downsampler, masks)))
        # shape-only and cached by shape: one row serves every object, whatever their number
        pos = encoder.position_encoding(torch.Size((1, *features.shape[1:])), features.device, features.dtype)
        if model.occlusion_spatial_embedding_parameter is not None:  # a "not visible" embedding where absent
            appearing = (object_score_logits.reshape(n, 1, 1) > 0).float()
            features = features + (1 - appearing[..., None]) * model.occlusion_spatial_embedding_parameter[
                ..., None, None
            ].expand(*features.shape)
        features = features.to(torch.bfloat16).flatten(2).transpose(1, 2)
        return features, pos[0].to(high_res.dtype).flatten(1).transpose(0, 1)

    def remember(
        self,
        feats,
        slots: list[int],
        frame: int,
        out: dict,
        conditioning: np.ndarray,
        binarize: bool,
        high_res: torch.Tensor | None = None,
        object_score_logits=None,
    ) -> None:
        """Encode and store frame ``frame``'s memory for bank ``slots`` (masks default to ``out``'s);
        ``conditioning`` (N,) bool marks entries that become conditioning memory."""
        if not slots:
            return
        high_res = out["high_res"] if high_res is None else high_res
        scores = out["object_score_logits"] if object_score_logits is None else object_score_logits
        # on the bank's stream: overlaps the next frame's encoder; the next read of the bank waits for it
        with self.bank.writer.run(tensors_of(feats, out, high_res, scores)):
            features, pos = self.encode(feats, high_res, scores, binarize)
            self.store(slots, frame, features, out["pointers"], pos, conditioning)

    def store(
        self,
        slots: list[int],
        frame: int,
        features: torch.Tensor,
        pointers: torch.Tensor,
        pos: torch.Tensor,
        conditioning: np.ndarray,
    ) -> None:
        """Write memory features (N, tokens, mem_dim) with their positions (tokens, mem_dim) and pointers
        (N, hidden) to the bank (``MemoryBank.write``), as the bank keeps them."""
        if self.bank.derived_entries:
            features = self.memory_keys_values(features, pos)
        self.bank.write(slots, frame, features, pointers, pos, conditioning)


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


def _keys_values(attn, key: torch.Tensor, value: torch.Tensor, rotation: torch.Tensor):
    """An attention's keys (RoPE ``rotation`` (L, head_dim / 2) applied, see ``key_rotation``) and values of
    inputs (..., L, C): ``Sam3TrackerVideoRoPEAttention``'s k/v projections, (..., L, width) each."""
    heads = (attn.num_attention_heads, attn.head_dim)
    return _rotate(attn.k_proj(key).unflatten(-1, heads), rotation).flatten(-2), attn.v_proj(value)


def _attend(
    attn,
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    rotation: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Sam3TrackerVideoRoPEAttention.forward`` from projected ``keys``/``values`` (B, L, width), with an
    optional boolean key mask (True = attend); a ``query`` (Bq, HW, C) batch of 1 is broadcast over B."""
    heads = (attn.num_attention_heads, attn.head_dim)
    q = _rotate(attn.q_proj(query).unflatten(-1, heads), rotation).transpose(1, 2)  # (Bq, heads, HW, head_dim)
    k, v = (x.unflatten(-1, heads).transpose(1, 2) for x in (keys, values))
    q = q.expand(k.shape[0], *q.shape[1:])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling)
    return attn.o_proj(out.transpose(1, 2).flatten(-2))


def keys_values_shape(tracker_model, tokens: int) -> tuple[int, int, int]:
    """The shape of a memory entry that keeps its memory attention keys and values (``memory_keys_values``):
    (2 x layers, tokens, width)."""
    layers = tracker_model.memory_attention.layers
    return (2 * len(layers), tokens, layers[0].cross_attn_image.k_proj.out_features)
