"""SAM 3's detector for several noun phrases in one batched pass, with cached text embeddings and NMS."""

from __future__ import annotations

from collections import OrderedDict

import torch

from ..kernels.ops import mask_nms
from .roi_align import install_for_transformers

_TEXT_CACHE_SIZE = 64


class Detector:
    """Runs ``Sam3Model`` (weights only) on one frame's vision features for the current prompt."""

    def __init__(self, model, tokenize):
        install_for_transformers()  # exemplar boxes need roi_align
        self.model = model
        self.tokenize = tokenize
        self._text: OrderedDict[tuple[str, ...], tuple] = OrderedDict()  # phrases -> (embeds, mask)

    @torch.inference_mode()
    def text_embeddings(self, phrases: list[str], device: torch.device):
        """Text features of ``phrases``, computed once per distinct prompt (LRU cache)."""
        key = tuple(phrases)
        if key in self._text:
            self._text.move_to_end(key)
            return self._text[key]
        tokens = self.tokenize(list(phrases))
        ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        embeds = self.model.get_text_features(input_ids=ids, attention_mask=mask, return_dict=True)
        self._text[key] = (embeds, mask)
        if len(self._text) > _TEXT_CACHE_SIZE:
            self._text.popitem(last=False)
        return self._text[key]

    def detect(self, vision_embeds, phrases: list[str], boxes: torch.Tensor | None, box_labels: torch.Tensor | None,
               score_threshold: float, nms_iou_threshold: float) -> dict[str, torch.Tensor]:
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
            kwargs = {"input_boxes": boxes[None].expand(p, -1, -1), "input_boxes_labels": box_labels[None].expand(p, -1)}
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
            "masks": masks.flatten(0, 1), "boxes": out.pred_boxes.flatten(0, 1).float(),
            "scores": torch.where(valid, scores, torch.zeros_like(scores)).flatten(), "valid": valid.flatten(),
            "concept": torch.arange(p, device=device).repeat_interleave(q),
        }


def _expand_vision(vision_embeds, n: int):
    """The detector's vision features repeated (as views) for ``n`` phrases."""
    if n == 1:
        return vision_embeds
    return type(vision_embeds)(**{
        key: (value.expand(n, *value.shape[1:]) if torch.is_tensor(value)
              else tuple(v.expand(n, *v.shape[1:]) for v in value) if isinstance(value, tuple) else value)
        for key, value in vision_embeds.items()
    })
