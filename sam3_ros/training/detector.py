"""Training steps on single frames: the vision encoder's concept pretraining, the prompt fusion's
binding, and the detector's step (a batch of images, several phrases each, one batched detector pass)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.sam3.modeling_sam3 import box_cxcywh_to_xyxy, inverse_sigmoid

from ..engine.mask_ops import logits_to_masks, masks_to_boxes
from ..engine.preprocess import to_pixels
from ..engine.roi_align import install_for_transformers
from ..kernels.ops import mask_iou
from .auxiliary import ConceptHead, MatchHead, PositionHead, QueryPositionHead, captured_output
from .data import DetectorSample, PhraseTarget
from .losses import LossWeights, box_xyxy_to_cxcywh, detector_losses


def pixels_of(images: list[np.ndarray], size: int, device: torch.device) -> torch.Tensor:
    """Images (H, W, 3) uint8 -> (B, 3, size, size), preprocessed exactly as ``Engine.step`` does."""
    return torch.cat(
        [to_pixels(torch.from_numpy(np.ascontiguousarray(im)).to(device), size, torch.float32) for im in images]
    )


def vision_features(model, images: list[np.ndarray], device: torch.device):
    """The detector's vision features (``Sam3Model.get_vision_features``) of images (H, W, 3) uint8."""
    pixels = pixels_of(images, int(model.tracker_model.image_size), device)
    return model.detector_model.get_vision_features(pixel_values=pixels)


def vision_rows(vision, index: torch.Tensor):
    """The vision features of images ``index`` (one row per detector call: an image asked several
    phrases appears once per phrase)."""
    return type(vision)(
        last_hidden_state=vision.last_hidden_state.index_select(0, index),
        fpn_hidden_states=tuple(f.index_select(0, index) for f in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(f.index_select(0, index) for f in vision.fpn_position_encoding),
    )


def phrase_rows(vision, samples: list[DetectorSample], device: torch.device):
    """The rows of one detector call over ``samples``: one per (image, phrase) pair, as ``(image index,
    target)`` pairs and the vision features of each row's image."""
    pairs = [(i, t) for i, s in enumerate(samples) for t in s.targets]
    return pairs, vision_rows(vision, torch.tensor([i for i, _ in pairs], device=device))


def vision_step(
    model, head: ConceptHead, position: PositionHead, samples: list[DetectorSample], device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """Concept pretraining of the vision encoder: per-pixel concept cross-entropy, plus each pixel's
    position, on the FPN levels the detector reads."""
    vision = vision_features(model, [s.image for s in samples], device)
    levels = vision.fpn_hidden_states[:-1]
    concept, where = head.loss(levels, samples), position.loss(levels)
    return concept + where, {"concept": float(concept.detach()), "position": float(where.detach())}


def binding_step(
    model, tokenize, samples: list[DetectorSample], head: MatchHead, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """The prompt fusion alone on frozen vision: text encoder and DETR encoder (called as the detector
    calls it) learn the per-cell phrase match before the decoder and heads train on top of them."""
    detector = model.detector_model
    with torch.no_grad():
        vision = vision_features(model, [s.image for s in samples], device)
    index = torch.tensor([i for i, s in enumerate(samples) for _ in s.targets], device=device)
    tokens = tokenize([t.phrase for s in samples for t in s.targets])
    ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
    text = detector.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
    level = vision.fpn_hidden_states[-2].index_select(0, index)
    fused = detector.detr_encoder(
        vision_features=[level],
        text_features=text,
        text_mask=mask.bool(),
        vision_pos_embeds=[vision.fpn_position_encoding[-2].index_select(0, index)],
    )
    loss = head.loss(fused.last_hidden_state, samples, tuple(level.shape[-2:]))
    return loss, {"match": float(loss.detach())}


def layer_predictions(out, box_offsets: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every decoder layer's logits (L, B, Q) and boxes (L, B, Q, 4) (normalized xyxy), as
    ``Sam3Model.forward`` computes them before it keeps the last layer's, from the outputs of the
    detector's last calls of ``detr_decoder.box_head`` and ``dot_product_scoring``."""
    boxes = box_cxcywh_to_xyxy((inverse_sigmoid(out.decoder_reference_boxes) + box_offsets).sigmoid())
    return scores[..., 0], boxes


_PAD_LABEL = -10  # transformers' label of a padding exemplar box (masked out of attention)


def exemplar_inputs(
    targets: list[PhraseTarget], sizes: list[tuple[int, int]], device: torch.device
) -> dict[str, torch.Tensor]:
    """``input_boxes`` (P, K, 4) normalized cxcywh and ``input_boxes_labels`` (P, K) of the prompts'
    exemplar boxes, as ``Engine`` passes them (rows with fewer boxes padded); empty without any box."""
    k = max(len(t.boxes) for t in targets)
    if k == 0:
        return {}
    install_for_transformers()
    boxes = torch.full((len(targets), k, 4), 0.5)
    labels = torch.full((len(targets), k), _PAD_LABEL, dtype=torch.long)
    for row, (target, (h, w)) in enumerate(zip(targets, sizes)):
        n = len(target.boxes)
        xyxy = torch.from_numpy(target.boxes).float() / torch.tensor([w, h, w, h], dtype=torch.float32)
        boxes[row, :n] = box_xyxy_to_cxcywh(xyxy)
        labels[row, :n] = torch.from_numpy(target.box_labels).long()
    return {"input_boxes": boxes.to(device), "input_boxes_labels": labels.to(device)}


def detector_step(
    model,
    tokenize,
    samples: list[DetectorSample],
    weights: LossWeights,
    device: torch.device,
    match_head: MatchHead | None = None,
    vision=None,
    query_head: QueryPositionHead | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its named parts for ``samples``; every (image, phrase) pair is one row of one
    detector call on shared vision features. Box, mask and focal terms are normalized by the number
    of ground-truth objects in the batch (as DETR does), presence, semantic and match terms by the
    number of pairs. Exemplar boxes of the prompts go to the geometry encoder. A frozen vision encoder
    (no parameter requiring grad) runs without a graph; ``vision``: its features of the samples, if known.
    ``match_head`` and ``query_head`` add the ``match`` and ``query_position`` terms."""
    detector = model.detector_model
    train_vision = any(p.requires_grad for p in detector.vision_encoder.parameters())
    if vision is None:
        with torch.set_grad_enabled(train_vision and torch.is_grad_enabled()):
            vision = vision_features(model, [s.image for s in samples], device)
    pairs, rows = phrase_rows(vision, samples, device)
    tokens = tokenize([t.phrase for _, t in pairs])
    with (
        captured_output(detector.detr_encoder) as encoder,
        captured_output(detector.detr_decoder.box_head) as offsets,
        captured_output(detector.dot_product_scoring) as scores,
        captured_output(detector.mask_decoder.mask_embedder) as mask_embeds,
    ):
        out = detector(
            vision_embeds=rows,
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
            **exemplar_inputs([t for _, t in pairs], [samples[i].image.shape[:2] for i, _ in pairs], device),
        )
    layer_logits, layer_boxes = layer_predictions(out, offsets["output"], scores["output"])
    totals: dict[str, torch.Tensor] = {}
    matched_embeds, matched_centres = [], []
    for row, (_, target) in enumerate(pairs):
        masks = torch.from_numpy(target.masks).to(device)
        h, w = masks.shape[-2:]
        gt_boxes = masks_to_boxes(masks) / torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
        gt_masks = masks.float()
        earlier = [(layer_logits[i, row], layer_boxes[i, row]) for i in range(layer_logits.shape[0] - 1)]
        losses, q, g = detector_losses(out, row, gt_masks, gt_boxes, weights, earlier)
        for name, value in losses.items():
            totals[name] = totals.get(name, 0) + value
        if query_head is not None:
            matched = gt_boxes[g.to(device)]
            matched_embeds.append(mask_embeds["output"][row, q.to(device)])
            matched_centres.append((matched[:, :2] + matched[:, 2:]) / 2)
    objects = max(1, sum(len(t.masks) for _, t in pairs))
    per_pair = ("presence", "semantic")
    scaled = {name: value / (len(pairs) if name in per_pair else objects) for name, value in totals.items()}
    if match_head is not None:  # the level the DETR encoder reads (the coarsest but one)
        grid = tuple(vision.fpn_hidden_states[-2].shape[-2:])
        scaled["match"] = match_head.loss(encoder["output"].last_hidden_state, samples, grid)
    if query_head is not None:
        scaled["query_position"] = query_head.loss(torch.cat(matched_embeds), torch.cat(matched_centres))
    loss = sum(getattr(weights, name) * value for name, value in scaled.items())
    return loss, {name: float(value.detach()) for name, value in scaled.items()}


# a query's score target rises linearly from 0 at this mask IoU with its best-matching object ...
SCORE_IOU_LOW = 0.3
SCORE_IOU_HIGH = 0.7  # ... to 1 here


def mask_quality(mask_logits: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Each query's mask (``mask_logits`` (Q, h, w), binarized at source resolution as the engine does) scored
    against its best-matching object of ``gt_masks`` (G, H, W) bool: (Q,) in [0, 1], from its IoU through
    the ramp ``SCORE_IOU_LOW`` .. ``SCORE_IOU_HIGH``; 0 without objects."""
    if gt_masks.shape[0] == 0:
        return mask_logits.new_zeros(mask_logits.shape[0])
    masks = logits_to_masks(mask_logits, tuple(gt_masks.shape[-2:]))
    iou = mask_iou(masks, gt_masks).amax(1).to(mask_logits.device)
    return ((iou - SCORE_IOU_LOW) / (SCORE_IOU_HIGH - SCORE_IOU_LOW)).clamp(0.0, 1.0)


def scoring_parameters(detector) -> list[torch.nn.Parameter]:
    """What the scoring phase trains: the two heads whose product is the engine's score, the scoring head
    (``dot_product_scoring``) and the presence token's head. Neither feeds anything else in the detector."""
    decoder = detector.detr_decoder
    return [
        *detector.dot_product_scoring.parameters(),
        *decoder.presence_head.parameters(),
        *decoder.presence_layer_norm.parameters(),
    ]


def scoring_step(
    model, tokenize, samples: list[DetectorSample], device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """``scoring_parameters`` alone on the frozen detector: the engine's score of each query (its probability
    x the presence probability) learns the quality of that query's mask (``mask_quality``), by BCE over every
    query of every (image, phrase) row, and the presence probability keeps its own BCE (is the phrase there).

    After the detector phase the presence probability of a present phrase is often near 0.5, which no query
    probability can make up for; here only its head learns, on the frozen presence token, which this phase
    cannot make steadier.

    The detector phase's one-to-one matching leaves the matched query's score split with the other queries
    on the same object: the ranking is right, the level is not. Here every query whose mask would be a good
    detection should clear the thresholds; the engine's NMS keeps one per object."""
    detector = model.detector_model
    decoder = detector.detr_decoder
    with (
        torch.no_grad(),
        captured_output(detector.dot_product_scoring) as scoring,
        captured_output(decoder.presence_layer_norm) as presence_input,
    ):
        pairs, rows = phrase_rows(vision_features(model, [s.image for s in samples], device), samples, device)
        tokens = tokenize([t.phrase for _, t in pairs])
        out = detector(
            vision_embeds=rows,
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
        )
        targets = torch.stack(
            [
                mask_quality(out.pred_masks[row], torch.from_numpy(t.masks).to(device))
                for row, (_, t) in enumerate(pairs)
            ]
        )
    logits = detector.dot_product_scoring(*scoring["args"], **scoring["kwargs"])[-1, ..., 0].float()
    limit = decoder.clamp_presence_logit_max_val  # the last decoder layer's presence logit, as the decoder has it
    presence = decoder.presence_head(decoder.presence_layer_norm(*presence_input["args"])).reshape(-1, 1)
    presence = presence.float().clamp(-limit, limit)
    log_score = F.logsigmoid(logits) + F.logsigmoid(presence)
    log_miss = torch.log1p(-log_score.exp().clamp(max=1 - 1e-6))
    score = -(targets * log_score + (1 - targets) * log_miss).mean()
    present = torch.tensor([[float(t.present)] for _, t in pairs], device=device)
    presence_loss = F.binary_cross_entropy_with_logits(presence, present)
    return score + presence_loss, {"score": float(score.detach()), "presence": float(presence_loss.detach())}


def exemplar_step(
    model, tokenize, samples: list[DetectorSample], weights: LossWeights, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """``detector_step`` on exemplar prompts, plus distillation from each prompt's ``text_twin``: the DETR
    encoder's fused image tokens, every query's logit and box, and the presence logit should be what the
    phrase asking for the same objects gives. Against a frozen detector the ground-truth losses alone
    barely move the geometry encoder (few positive-exemplar prompts get detected); the twin says
    densely where the detector already knows the answer."""
    detector = model.detector_model
    with torch.no_grad():
        vision = vision_features(model, [s.image for s in samples], device)
        pairs, rows = phrase_rows(vision, samples, device)
        tokens = tokenize([t.text_twin for _, t in pairs])
        with captured_output(detector.detr_encoder) as encoder:
            twin = detector(
                vision_embeds=rows,
                input_ids=tokens["input_ids"].to(device),
                attention_mask=tokens["attention_mask"].to(device),
            )
        twin_tokens = encoder["output"].last_hidden_state
    with captured_output(detector.detr_encoder) as encoder, captured_output(detector) as student:
        loss, parts = detector_step(model, tokenize, samples, weights, device, vision=vision)
    out = student["output"]
    distill = (
        F.mse_loss(encoder["output"].last_hidden_state, twin_tokens) / twin_tokens.var()
        + _soft_bce(out.pred_logits, twin.pred_logits)
        + _soft_bce(out.presence_logits, twin.presence_logits)
        + F.l1_loss(out.pred_boxes, twin.pred_boxes)
    )
    parts["twin"] = float(distill.detach())
    return loss + weights.twin * distill, parts


def _soft_bce(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """BCE of ``logits`` against the probabilities of ``target_logits``, less its minimum (the targets'
    entropy): the mean KL divergence of two Bernoulli predictions, 0 when they agree."""
    target = target_logits.sigmoid()
    return F.binary_cross_entropy_with_logits(logits, target) - F.binary_cross_entropy_with_logits(
        target_logits, target
    )
