"""Where a trained toy model stands, on held-out training-style frames and clips: the figures that say
which part of it keeps the benchmark at zero long before ``sam3-ros eval`` does.

- shape in the backbone: a linear probe's held-out accuracy at reading a concept region's shape from the
  detector's vision features pooled over it (colour is read near 100%; shape is what tells the hard
  negatives apart).
- presence: does the presence head tell a present phrase from absent ones that share a colour or a
  shape with an object in the image (the benchmark's hard negatives)?
- localization: for each object of a present phrase, the best GIoU of any query's box; and how far a
  query's box moves between images (a decoder that ignores the image keeps every query at its anchor).
- scores: the engine's score (query x presence) of queries on a prompted object vs all the others, and
  how often a present phrase has a query over the engine's 0.5 detection threshold.
- exemplars: how often a prompt with a positive exemplar box detects an object of the boxed concept, and
  how often a prompt with only a negative box detects nothing.
- tracker: objects started from their first-frame masks and tracked through short clips (the engine's
  tracker code): the masks' IoU with the truth, against what copying the last true mask would get, and
  the IoU between the masks of two different objects (near 1: the masks do not depend on the object).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..engine.loading import LoadedModel
from ..engine.mask_ops import logits_to_masks, masks_to_boxes
from ..kernels.ops import mask_iou
from ..eval.synthetic import SHAPES, all_concepts, split_concept
from ..settings import DetectionSettings
from .data import UNKNOWN_PHRASES, DetectorSample, detector_sample, exemplar_sample, tracker_clip
from .detector import exemplar_inputs, vision_features, vision_rows
from .losses import generalized_box_iou
from .tracker import propagate_clip

PROBE_SEED = 777  # a training-style generator seed; its worlds come from TRAIN_SEEDS like training's
ON_OBJECT_GIOU = 0.5  # a query "sits on" an object at this GIoU
DETECTION_SCORE = DetectionSettings().score_threshold  # the engine's default detection threshold
NEW_OBJECT_SCORE = DetectionSettings().new_object_threshold  # its default score for a detection to start an object
TRACKER_CLIP_LENGTH = 8


@dataclass
class ProbeReport:
    frames: int
    objects: int
    shape_probe_accuracy: float  # held-out, on the second half of the frames' concept regions (chance 1/3)
    presence_present: float  # medians of the presence probability
    presence_same_colour: float
    presence_same_shape: float
    presence_auc_same_colour: float  # P(present phrase > absent one sharing a colour)
    presence_auc_same_shape: float
    best_query_giou: float  # median over objects of the best query box's GIoU
    objects_with_query_on: float  # share of objects with a query box at GIoU > ON_OBJECT_GIOU
    query_box_motion: float  # mean per-query std of the box centre across images (normalized units)
    score_on_object: float  # median engine score of queries on a prompted object
    score_elsewhere: float  # median engine score of all other queries
    present_phrases_detected: float  # share of present phrases with a query score > DETECTION_SCORE
    present_phrases_starting: float  # share of present phrases with a query score > NEW_OBJECT_SCORE
    exemplar_prompts_detected: float  # share of positive-exemplar prompts whose top query is on a target
    negative_exemplars_clear: float  # share of negative-box-only prompts with no query over DETECTION_SCORE
    tracker_clips: int
    tracker_mask_iou: float  # median IoU of tracked masks with the truth (objects visible on the frame)
    tracker_copy_iou: float  # median IoU of an object's true mask with its true mask one frame before
    tracker_cross_object_iou: float  # median IoU between two different objects' tracked masks on a frame

    def table(self) -> str:
        """The report as ``name  value`` lines."""
        return "\n".join(
            f"{name:28s} {value:.3f}" if isinstance(value, float) else f"{name:28s} {value}"
            for name, value in asdict(self).items()
        )


def rank_auc(positives: list[float], negatives: list[float]) -> float:
    """P(a positive ranks above a negative), ties counted half (the ROC AUC); NaN without both kinds."""
    if not positives or not negatives:
        return float("nan")
    p, n = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


@torch.no_grad()
def probe_model(loaded: LoadedModel, frames: int = 120, seed: int = PROBE_SEED, clips: int = 12) -> ProbeReport:
    """Run the detector of ``loaded`` on ``frames`` held-out frames, 4 phrases each, and its tracker on
    ``clips`` held-out clips, and report."""
    detector = loaded.model.detector_model
    device = next(detector.parameters()).device
    rng = np.random.default_rng(seed)
    presence: dict[str, list[float]] = {"present": [], "same colour": [], "same shape": []}
    best_giou, on_scores, other_scores, detected, starting, centres = [], [], [], [], [], []
    exemplar_rng, exemplar_hits, negative_clear = np.random.default_rng(seed + 1), [], []
    region_features, region_shapes = [], []
    for _ in tqdm(range(frames), desc="probe", unit="frame", dynamic_ncols=True):
        sample = detector_sample(rng, 4)
        targets = [t for t in sample.targets if t.phrase not in UNKNOWN_PHRASES]
        if not targets:  # only phrases outside the vocabulary were drawn
            continue
        vision = vision_features(loaded.model, [sample.image], device)
        pooled, shapes_seen = _region_features(vision.fpn_hidden_states[-2][0], sample.concepts)
        region_features.append(pooled.cpu())
        region_shapes += shapes_seen
        rows = vision_rows(vision, torch.zeros(len(targets), dtype=torch.long, device=device))
        tokens = loaded.tokenize([t.phrase for t in targets])
        out = detector(
            vision_embeds=rows,
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
        )
        present_prob = out.presence_logits.float().sigmoid().reshape(-1).cpu()
        scores = (out.pred_logits.float().sigmoid() * present_prob[:, None].to(device)).cpu()
        boxes = out.pred_boxes.float().cpu()
        centres.append(((boxes[0, :, :2] + boxes[0, :, 2:]) / 2).numpy())
        seen = [all_concepts()[k] for k in np.unique(sample.concepts) if k < len(all_concepts())]
        colours, shapes = {split_concept(c)[0] for c in seen}, {split_concept(c)[1] for c in seen}
        h, w = sample.image.shape[:2]
        for row, target in enumerate(targets):
            on = torch.zeros(scores.shape[1], dtype=torch.bool)
            if target.present:
                presence["present"].append(float(present_prob[row]))
                gt = masks_to_boxes(torch.from_numpy(target.masks)) / torch.tensor([w, h, w, h])
                giou = generalized_box_iou(boxes[row], gt)
                best_giou.extend(giou.amax(0).tolist())
                on = (giou > ON_OBJECT_GIOU).any(1)
                detected.append(float(scores[row].max() > DETECTION_SCORE))
                starting.append(float(scores[row].max() > NEW_OBJECT_SCORE))
            else:
                colour, shape = split_concept(target.phrase)
                if colour in colours:
                    presence["same colour"].append(float(present_prob[row]))
                elif shape in shapes:
                    presence["same shape"].append(float(present_prob[row]))
            on_scores.extend(scores[row][on].tolist())
            other_scores.extend(scores[row][~on].tolist())
        hits, clear = _probe_exemplars(loaded, exemplar_sample(exemplar_rng, 4), device)
        exemplar_hits += hits
        negative_clear += clear

    tracked = track_clips(loaded, clips, np.random.default_rng(seed + 2), device)
    visible = tracked["visible"]

    return ProbeReport(
        frames=frames,
        objects=len(best_giou),
        shape_probe_accuracy=linear_probe_accuracy(torch.cat(region_features), torch.tensor(region_shapes)),
        presence_present=_median(presence["present"]),
        presence_same_colour=_median(presence["same colour"]),
        presence_same_shape=_median(presence["same shape"]),
        presence_auc_same_colour=rank_auc(presence["present"], presence["same colour"]),
        presence_auc_same_shape=rank_auc(presence["present"], presence["same shape"]),
        best_query_giou=_median(best_giou),
        objects_with_query_on=_share(np.asarray(best_giou) > ON_OBJECT_GIOU),
        query_box_motion=float(np.stack(centres).std(0).mean()),
        score_on_object=_median(on_scores),
        score_elsewhere=_median(other_scores),
        present_phrases_detected=_share(detected),
        present_phrases_starting=_share(starting),
        exemplar_prompts_detected=_share(exemplar_hits),
        negative_exemplars_clear=_share(negative_clear),
        tracker_clips=clips,
        tracker_mask_iou=_median(tracked["iou"][visible]),
        tracker_copy_iou=_median(tracked["copy"][visible]),
        tracker_cross_object_iou=_median(tracked["cross"]),
    )


def _region_features(feature: torch.Tensor, concepts: np.ndarray) -> tuple[torch.Tensor, list[int]]:
    """Features (C, h, w) averaged over each concept region of the (H, W) concept map (R, C), area-weighted at
    the features' resolution, and each region's shape index."""
    index = [k for k in np.unique(concepts) if k < len(all_concepts())]
    if not index:  # a frame of background only
        return feature.new_zeros((0, feature.shape[0])), []
    regions = torch.from_numpy(np.stack([concepts == k for k in index])).float()[:, None].to(feature.device)
    weights = F.interpolate(regions, size=tuple(feature.shape[-2:]), mode="area")[:, 0]
    pooled = torch.einsum("chw,rhw->rc", feature.float(), weights) / weights.sum((-2, -1))[:, None].clamp(min=1e-6)
    return pooled, [SHAPES.index(split_concept(all_concepts()[k])[1]) for k in index]


def linear_probe_accuracy(features: torch.Tensor, labels: torch.Tensor, steps: int = 500) -> float:
    """Accuracy on the second half of (features (N, C), labels (N,)) of a linear classifier fitted, on
    standardized features, to the first half; NaN for fewer than 4 rows."""
    if len(labels) < 4:
        return float("nan")
    train = torch.arange(len(labels)) < len(labels) // 2
    x = (features - features[train].mean(0)) / features[train].std(0).clamp(min=1e-6)
    generator = torch.Generator().manual_seed(0)
    classifier = torch.nn.Linear(x.shape[1], int(labels.max()) + 1)
    with torch.no_grad():
        classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=generator) * 0.01)
        classifier.bias.zero_()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-2, weight_decay=1e-3)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            F.cross_entropy(classifier(x[train]), labels[train]).backward()
            optimizer.step()
    with torch.no_grad():
        return float((classifier(x[~train]).argmax(1) == labels[~train]).float().mean())


def _median(values: list[float]) -> float:  # NaN for no values
    return float(np.median(values)) if len(values) else float("nan")


def _share(values) -> float:  # mean of 0/1 values; NaN for none
    return float(np.mean(values)) if len(values) else float("nan")


def track_clips(
    loaded: LoadedModel,
    clips: int,
    rng: np.random.Generator,
    device,
    length: int = TRACKER_CLIP_LENGTH,
    objects: int = 4,
    vanishing: float = 0.0,
) -> dict[str, np.ndarray]:
    """Track the objects of ``clips`` held-out clips (``data.tracker_clip``) from their first-frame masks. Per
    object and tracked frame: ``visible`` (its true mask is not empty), ``present`` (the tracker's object score
    says so), ``iou`` of its mask with its truth, and ``copy``, the IoU of the truth with itself one frame
    before; ``cross``: the IoU of every pair of different objects' masks on every tracked frame."""
    found: dict[str, list] = {"visible": [], "present": [], "iou": [], "copy": [], "cross": []}
    for _ in tqdm(range(clips), desc="track clips", unit="clip", dynamic_ncols=True):
        clip = tracker_clip(rng, length, objects, vanishing=vanishing)
        truth = torch.from_numpy(clip.masks)
        for t, out in propagate_clip(loaded.model, clip, device):
            masks = logits_to_masks(out["low_res"][:, 0], tuple(truth.shape[-2:])).cpu()  # empty where absent
            found["visible"] += truth[t].flatten(1).any(1).tolist()
            found["present"] += (out["object_score_logits"][:, 0] > 0).cpu().tolist()
            found["iou"] += torch.diagonal(mask_iou(masks, truth[t])).tolist()
            found["copy"] += torch.diagonal(mask_iou(truth[t - 1], truth[t])).tolist()
            pairs = torch.triu_indices(len(masks), len(masks), offset=1)
            found["cross"] += mask_iou(masks, masks)[pairs[0], pairs[1]].tolist()
    return {name: np.asarray(values) for name, values in found.items()}


def _probe_exemplars(loaded: LoadedModel, sample: DetectorSample, device) -> tuple[list[bool], list[bool]]:
    """For each exemplar prompt of ``sample``: with a positive box, is the top-scoring query over the threshold
    and on an object of the boxed concept; with only a negative box, is no query over the threshold."""
    targets = sample.targets
    vision = vision_features(loaded.model, [sample.image], device)
    rows = vision_rows(vision, torch.zeros(len(targets), dtype=torch.long, device=device))
    tokens = loaded.tokenize([t.phrase for t in targets])
    out = loaded.model.detector_model(
        vision_embeds=rows,
        input_ids=tokens["input_ids"].to(device),
        attention_mask=tokens["attention_mask"].to(device),
        **exemplar_inputs(targets, [sample.image.shape[:2]] * len(targets), device),
    )
    scores = (out.pred_logits.float().sigmoid() * out.presence_logits.float().sigmoid()).cpu()
    h, w = sample.image.shape[:2]
    hits, clear = [], []
    for row, target in enumerate(targets):
        if target.box_labels.any():
            top = int(scores[row].argmax())
            gt = masks_to_boxes(torch.from_numpy(target.masks)) / torch.tensor([w, h, w, h])
            on = bool(
                (generalized_box_iou(out.pred_boxes[row, top : top + 1].float().cpu(), gt) > ON_OBJECT_GIOU).any()
            )
            hits.append(on and float(scores[row, top]) > DETECTION_SCORE)
        elif not target.phrase:
            clear.append(float(scores[row].max()) <= DETECTION_SCORE)
    return hits, clear
