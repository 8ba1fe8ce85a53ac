"""SAM 3's detector for several noun phrases in one batched pass, with cached text embeddings and NMS."""

from __future__ import annotations

import types
from collections import OrderedDict

import numpy as np
import torch

from ..kernels.ops import mask_nms
from .roi_align import install_for_transformers

_TEXT_CACHE_SIZE = 64


class Detector:
    """Runs ``Sam3Model`` (weights only) on one frame's vision features for the current prompt."""

    def __init__(self, model, tokenize):
        install_for_transformers()  # exemplar boxes need roi_align
        model.detr_encoder._prepare_multilevel_features = types.MethodType(_flatten_levels, model.detr_encoder)
        self.model = model
        self.tokenize = tokenize
        self._text: OrderedDict[tuple[str, ...], tuple] = OrderedDict()  # phrases -> (embeds, mask)

    @torch.inference_mode()
    def text_embeddings(self, phrases: list[str], device: torch.device):
        """Text features of ``phrases`` and their token mask, computed once per distinct prompt (LRU cache).
        The mask is None when no phrase is padded: transformers would otherwise check that on the device
        (``mask.all()``, a host sync) in every attention layer that reads the text, every frame."""
        key = tuple(phrases)
        if key in self._text:
            self._text.move_to_end(key)
            return self._text[key]
        tokens = self.tokenize(list(phrases))
        ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        embeds = self.model.get_text_features(input_ids=ids, attention_mask=mask, return_dict=True)
        self._text[key] = (embeds, mask if not bool(tokens["attention_mask"].all()) else None)
        if len(self._text) > _TEXT_CACHE_SIZE:
            self._text.popitem(last=False)
        return self._text[key]

    def detect(
        self,
        vision_embeds,
        phrases: list[str],
        boxes: torch.Tensor | None,
        box_labels: torch.Tensor | None,
        score_threshold: float,
        nms_iou_threshold: float,
    ) -> dict[str, torch.Tensor]:
        """Detections of every phrase, flattened phrase-major: ``masks`` (D, h, w) logits, ``boxes``
        (D, 4) normalized xyxy, ``scores`` (D,) (0 for suppressed/below threshold), ``valid`` (D,),
        ``concept`` (D,) phrase index. ``boxes``/``box_labels`` (B, 4) cxcywh normalized / (B,) are
        exemplars shared by all phrases (an exemplar-only prompt uses one empty phrase)."""
        device = vision_embeds.last_hidden_state.device
        texts = phrases or [""]
        embeds, mask = self.text_embeddings(texts, device)
        p = len(texts)
        batched = _expand_vision(vision_embeds, p)
        kwargs = {}
        if boxes is not None and boxes.shape[0] > 0:
            kwargs = {
                "input_boxes": boxes[None].expand(p, -1, -1),
                "input_boxes_labels": box_labels[None].expand(p, -1),
            }
            if mask is None:  # with exemplar boxes transformers concatenates the text mask with theirs
                mask = torch.ones(embeds.last_hidden_state.shape[:2], dtype=torch.long, device=device)
        out = self.model(vision_embeds=batched, text_embeds=embeds, attention_mask=mask, **kwargs)
        scores = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid()).float()  # (P, Q)
        valid = scores > score_threshold
        masks = out.pred_masks  # (P, Q, h, w)
        if nms_iou_threshold > 0:  # NMS among valid detections of each phrase, as the reference does
            for i in range(p):
                binary = (masks[i] > 0) & valid[i][:, None, None]
                valid[i] &= mask_nms(binary, scores[i], nms_iou_threshold)
        q = scores.shape[1]
        return {
            "masks": masks.flatten(0, 1),
            "boxes": out.pred_boxes.flatten(0, 1).float(),
            "scores": torch.where(valid, scores, torch.zeros_like(scores)).flatten(),
            "valid": valid.flatten(),
            "concept": torch.arange(p, device=device).repeat_interleave(q),
        }


def _expand_vision(vision_embeds, n: int):
    """The detector's vision features repeated (as views) for ``n`` phrases."""
    if n == 1:
        return vision_embeds
    return type(vision_embeds)(
        **{
            key: (
                value.expand(n, *value.shape[1:])
                if torch.is_tensor(value)
                else tuple(v.expand(n, *v.shape[1:]) for v in value)
                if isinstance(value, tuple)
                else value
            )
            for key, value in vision_embeds.items()
        }
    )


def _flatten_levels(self, vision_features: list[torch.Tensor], vision_pos_embeds: list[torch.Tensor]):
    """``Sam3DetrEncoder._prepare_multilevel_features`` with the level shapes kept on the host.

    transformers puts them in a device tensor, then the decoder reads them back in every layer
    (``torch.arange(0, height)``): host syncs. They are host-known sizes: a numpy array keeps them on
    the host as plain integers (the decoder only indexes it and reads its length).
    """
    shapes = np.array([tuple(f.shape[-2:]) for f in vision_features], dtype=np.int64)
    features = torch.cat([f.flatten(2).transpose(1, 2) for f in vision_features], dim=1)
    positions = torch.cat([p.flatten(2).transpose(1, 2) for p in vision_pos_embeds], dim=1)
    return features, positions, shapes
