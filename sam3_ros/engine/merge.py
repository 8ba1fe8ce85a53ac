"""Detections x tracks, on device with no per-object loops: SAM 3's streaming merge heuristics.

Semantics follow ``Sam3VideoModel`` (``_associate_det_trk``, re-conditioning, recent-occlusion
overlap suppression, per-concept pixel non-overlap with shrink suppression). IoU and the association
come from ``sam3_ros.kernels.ops`` (CUDA kernels for CUDA tensors, the torch references otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from ..kernels.host_ops import merge_plan_arrays, merge_settings, pack_positive, packed_iou
from ..kernels.ops import mask_iou, merge_plan
from ..kernels.torch_ops import MergeConfig

NO_OBJECT_LOGIT = -10.0
NEVER_OCCLUDED = -1


@dataclass
class MergeThresholds:
    assoc_iou: float  # detection-track IoU that counts as a match
    track_assoc_iou: float  # IoU for a track to count as confirmed (else "unmatched")
    new_object: float  # score a detection needs to start a new object
    high_conf: float  # detection score (and track logit) needed to re-condition a track
    high_iou: float  # IoU needed to re-condition a track
    occlusion_iou: float  # overlap above which the most recently occluded of two tracks is suppressed


@dataclass
class Association:
    is_new: torch.Tensor  # (D,) bool: detection starts a new object
    matched: torch.Tensor  # (N,) bool: track matched by a detection (IoU >= assoc)
    confirmed: torch.Tensor  # (N,) bool: track matched with IoU >= track_assoc
    best_det: torch.Tensor  # (N,) long: highest-IoU detection of each track
    best_score: torch.Tensor  # (N,) float: that detection's score (0 if unmatched)
    recondition_det: torch.Tensor  # (N,) long: detection re-conditioning each track, -1 for none


def merge_config(t: MergeThresholds) -> MergeConfig:
    """The kernels' merge settings of the engine's association (score threshold 0: an invalid detection comes with
    score -1; the other settings at their defaults)."""
    return MergeConfig(
        score_threshold=0.0,
        assoc_iou=t.assoc_iou,
        track_assoc_iou=t.track_assoc_iou,
        new_object_score=t.new_object,
        high_conf_score=t.high_conf,
        high_iou=t.high_iou,
    )


def associate(
    det_masks: torch.Tensor,
    det_scores: torch.Tensor,
    det_valid: torch.Tensor,
    det_concept: torch.Tensor,
    trk_masks: torch.Tensor,
    trk_concept: torch.Tensor,
    t: MergeThresholds,
) -> Association:
    """Match detections (D, h, w logits) with tracks (N, h, w logits) of the same concept.

    The matching is the kernels' ``merge_plan`` (CUDA kernel on GPU). The engine keeps its own object
    life cycle on top: a new object also needs ``new_object`` score when there are no tracks yet, ids
    are given on the host, and expiry counts frames since the last confirmation (``keep_alive_frames``)
    instead of the plan's keep-alive counters.
    """
    d, n = det_masks.shape[0], trk_masks.shape[0]
    device = det_masks.device
    ious = mask_iou(det_masks > 0, trk_masks > 0) if d and n else torch.zeros(d, n, device=device)
    plan = merge_plan(
        ious,
        torch.where(det_valid, det_scores.float(), -1.0),  # invalid: under the threshold
        torch.ones(n, dtype=torch.bool, device=device),
        torch.zeros(n, dtype=torch.long, device=device),
        torch.zeros(1, dtype=torch.long, device=device),
        merge_config(t),
        det_concept,
        trk_concept,
    )
    is_new = (plan.det_new_id >= 0) & (det_scores >= t.new_object)
    ious = torch.where(
        (det_concept[:, None] == trk_concept[None, :]) & det_valid[:, None], ious, torch.zeros_like(ious)
    )
    if d:
        best_iou, best_det = ious.max(dim=0)
    else:
        best_iou, best_det = ious.new_zeros(n), torch.zeros(n, dtype=torch.long, device=device)
    matched = plan.trk_matched
    best_score = torch.where(matched, det_scores[best_det] if d else best_iou, torch.zeros_like(best_iou))
    return Association(is_new, matched, ~plan.trk_unmatched, best_det, best_score, plan.trk_recondition_det)


def occlusion_suppression(
    trk_masks: torch.Tensor, trk_concept: torch.Tensor, last_occluded: torch.Tensor, frame: int, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tracks to suppress (N,) and updated last-occluded frames (N,).

    Of two same-concept tracks overlapping with IoU >= ``threshold``, the more recently occluded one
    is suppressed (if the other was ever occluded). Empty or suppressed tracks count as occluded now.
    """
    n = trk_masks.shape[0]
    binary = trk_masks > 0
    suppress = torch.zeros(n, dtype=torch.bool, device=trk_masks.device)
    if n > 1 and threshold > 0:
        overlap = (mask_iou(binary, binary) >= threshold) & (trk_concept[:, None] == trk_concept[None, :])
        overlap.fill_diagonal_(False)
        later = last_occluded[:, None] > last_occluded[None, :]
        suppress = (overlap & later & (last_occluded[None, :] > NEVER_OCCLUDED)).any(dim=1)
    occluded = ~binary.flatten(1).any(dim=1) | suppress
    return suppress, torch.where(occluded, torch.full_like(last_occluded, frame), last_occluded)


@dataclass
class Decisions:
    """What ``merge_on_host`` decided for the frame's D detections and N tracked objects."""

    is_new: np.ndarray  # (D,) bool: detection starts a new object (``Association.is_new``)
    recondition: np.ndarray  # (N,) bool: object re-conditioned on ``recondition_det`` this frame
    recondition_det: np.ndarray  # (N,) int64: the detection to re-condition each object on, -1 for none
    suppress: np.ndarray  # (N,) bool: suppressed by a more recently occluded overlap (``occlusion_suppression``)
    expired: np.ndarray  # (N,) bool: not confirmed for more than keep_alive_frames (click-created objects never)
    score: np.ndarray  # (N,) float32: each object's score after this frame


def merge_on_host(
    dets: dict[str, torch.Tensor],
    trk_logits: torch.Tensor,
    trk_concept: torch.Tensor,
    object_scores: torch.Tensor,
    slots: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
    frame: int,
    recondition_now: bool,
    keep_alive_frames: int,
    t: MergeThresholds,
) -> Decisions:
    """The association (``associate``), re-conditioning, ``occlusion_suppression`` and the objects' bookkeeping of
    the engine's merge in one compiled pass, for float32 CPU tensors: the same decisions as those tensor operations
    (a few dozen per frame, which cost more than the work itself on the host). ``dets`` are the detector's outputs,
    ``trk_logits`` (N, h, w) the tracked objects' hole-filled masks, ``object_scores`` (N,) their tracker score
    logits, ``slots`` (N,) their slots; ``state`` (last occluded frame, last confirmed frame, score; arrays over
    every slot) is updated at ``slots``."""
    (d, h, w), n = dets["masks"].shape, trk_logits.shape[0]
    decided = Decisions(
        np.zeros(d, np.bool_),
        np.zeros(n, np.bool_),
        np.zeros(n, np.int64),
        np.zeros(n, np.bool_),
        np.zeros(n, np.bool_),
        np.zeros(n, np.float32),
    )
    thresholds, limits = merge_settings(merge_config(t))
    _decide(
        pack_positive(dets["masks"].reshape(d, h * w).numpy()),
        dets["scores"].numpy(),
        dets["valid"].numpy(),
        dets["concept"].numpy(),
        pack_positive(trk_logits.reshape(n, h * w).numpy()),
        trk_concept.numpy(),
        object_scores.numpy(),
        slots,
        *state,
        frame,
        recondition_now,
        keep_alive_frames,
        thresholds,
        limits,
        np.float32(t.occlusion_iou),
        t.occlusion_iou > 0,
        decided.is_new,
        decided.recondition,
        decided.recondition_det,
        decided.suppress,
        decided.expired,
        decided.score,
    )
    return decided


def prepare_merge_on_host() -> None:
    """Compile ``merge_on_host``'s loops (or load them from numba's cache) now, not on a camera's first frame."""
    masks = torch.ones(2, 4, 4)
    dets = {"masks": masks, "scores": torch.ones(2), "valid": torch.ones(2, dtype=torch.bool)}
    dets["concept"] = torch.zeros(2, dtype=torch.long)
    state = (np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros(4, np.float32))
    thresholds = MergeThresholds(0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
    merge_on_host(dets, masks, dets["concept"], torch.ones(2), np.arange(2), state, 1, True, 1, thresholds)
    mask_iou(masks > 0, masks > 0)  # the kernels' host versions for CPU tensors


@njit(cache=True, nogil=True)
def _decide(
    det_bits,
    det_scores,
    det_valid,
    det_concept,
    trk_bits,
    trk_concept,
    object_scores,
    slots,
    last_occluded,
    last_detected,
    score,
    frame,
    recondition_now,
    keep_alive_frames,
    thresholds,
    limits,
    occlusion_iou,
    occlusion_on,
    is_new,
    recondition,
    recondition_det,
    suppress,
    expired,
    scores_out,
):
    """``merge_on_host``'s loops: the tensor operations of ``associate``, ``occlusion_suppression`` and the merge
    in ``Engine._merge``, in their order, on bit-packed masks (``pack_positive``)."""
    d, n = det_bits.shape[0], trk_bits.shape[0]
    new_object, high_conf = thresholds[3], thresholds[4]
    ious = np.zeros((d, n), np.float32)
    if d and n:
        packed_iou(det_bits, trk_bits, ious)
    plan_scores = np.where(det_valid, det_scores, np.float32(-1.0))  # invalid: under the threshold
    det_track, det_new_id = np.empty(d, np.int64), np.empty(d, np.int64)
    matched, unmatched, alive = np.empty(n, np.bool_), np.empty(n, np.bool_), np.empty(n, np.int64)
    merge_plan_arrays(
        ious,
        plan_scores,
        np.ones(n, np.bool_),
        np.zeros(n, np.int64),
        det_concept,
        trk_concept,
        thresholds,
        limits,
        0,
        det_track,
        det_new_id,
        matched,
        unmatched,
        recondition_det,
        alive,
    )
    for k in range(d):
        is_new[k] = det_new_id[k] >= 0 and det_scores[k] >= new_object
    # occlusion: of two overlapping objects of a concept the more recently occluded one (if the other ever was)
    if n > 1 and occlusion_on:
        overlap = np.empty((n, n), np.float32)
        packed_iou(trk_bits, trk_bits, overlap)
        for i in range(n):
            for j in range(n):
                later = last_occluded[slots[i]] > last_occluded[slots[j]] > NEVER_OCCLUDED
                if i != j and overlap[i, j] >= occlusion_iou and trk_concept[i] == trk_concept[j] and later:
                    suppress[i] = True
    for j in range(n):
        slot = slots[j]
        empty = not trk_bits[j].any()
        best, best_iou = 0, np.float32(0)  # the best detection of the object's concept, the first of equal IoUs
        for k in range(d):
            value = ious[k, j] if det_concept[k] == trk_concept[j] and det_valid[k] else np.float32(0)
            if k == 0 or value > best_iou:
                best, best_iou = k, value
        recondition[j] = recondition_now and recondition_det[j] >= 0 and object_scores[j] > high_conf
        if empty or suppress[j]:
            last_occluded[slot] = frame
        if not unmatched[j]:  # confirmed
            last_detected[slot] = frame
        if matched[j]:
            score[slot] = det_scores[best]
        scores_out[j] = score[slot]
        expired[j] = frame - last_detected[slot] > keep_alive_frames and trk_concept[j] >= 0


def suppress_shrunk(
    logits: torch.Tensor, concept: torch.Tensor, num_concepts: int, shrink_threshold: float = 0.3
) -> torch.Tensor:
    """Per concept, keep each pixel for its highest-scoring object; objects whose area then falls
    below ``shrink_threshold`` of the original are pushed below ``NO_OBJECT_LOGIT`` (N, 1, h, w).
    ``concept`` values lie in [-1, num_concepts) (-1: click-created objects, a group of their own)."""
    n = logits.shape[0]
    if n <= 1:
        return logits
    if logits.device.type == "cpu":  # compiled: a dozen tensor ops took 3-5 ms at 64 x 48 x 48, this 0.8
        pixels = np.ascontiguousarray(logits[:, 0].float().numpy())
        kept = _kept_on_host(pixels, concept.numpy().astype(np.int64), np.float32(shrink_threshold))
        keep = torch.from_numpy(kept)
    else:
        keep = _kept(logits, concept, num_concepts, shrink_threshold)
    return torch.where(keep[..., None, None], logits, logits.clamp(max=NO_OBJECT_LOGIT))


def _kept(logits: torch.Tensor, concept: torch.Tensor, num_concepts: int, shrink_threshold: float) -> torch.Tensor:
    """``suppress_shrunk``'s (N, 1) keep flags with tensor ops (any device)."""
    n = logits.shape[0]
    own = torch.arange(n, device=logits.device)[:, None, None]
    winner = torch.zeros_like(logits[:, 0], dtype=torch.long)
    for c in range(-1, num_concepts):  # a loop over concepts (few), not objects
        member = concept == c
        group = torch.where(member[:, None, None], logits[:, 0], torch.full_like(logits[:, 0], -torch.inf))
        winner = torch.where(member[:, None, None], group.argmax(dim=0, keepdim=True), winner)  # ties: lowest index
    exclusive = torch.where((winner == own)[:, None], logits, logits.clamp(max=NO_OBJECT_LOGIT))
    before = (logits > 0).sum(dim=(-1, -2)).clamp(min=1)
    after = (exclusive > 0).sum(dim=(-1, -2))
    return (after / before) >= shrink_threshold


@njit(cache=True, nogil=True)
def _kept_on_host(logits, concept, shrink_threshold):
    """``_kept`` on the host, (N, 1) bool, for (N, h, w) float32 logits: per pixel and concept the winner is
    ``argmax``'s (the highest logit, NaN above all, ties to the lowest index); an object is kept while the
    pixels it wins and has above 0 are at least ``shrink_threshold`` of those it has above 0."""
    n, h, w = logits.shape
    pixels = logits.reshape(n, h * w)
    groups = np.unique(concept)
    group_of = np.searchsorted(groups, concept)
    winner = np.full((len(groups), h * w), -1, np.int64)
    best = np.empty((len(groups), h * w), np.float32)  # the winner's logit
    before = np.zeros(n, np.int64)
    for i in range(n):  # objects in index order, so a tie stays with the lowest index
        g = group_of[i]
        for p in range(h * w):
            v = pixels[i, p]
            before[i] += v > 0
            b = best[g, p]
            if winner[g, p] < 0 or ((v > b or np.isnan(v)) and not np.isnan(b)):
                winner[g, p], best[g, p] = i, v
    after = np.zeros(n, np.int64)
    for g in range(len(groups)):
        for p in range(h * w):
            if best[g, p] > 0:
                after[winner[g, p]] += 1
    kept = np.empty((n, 1), np.bool_)
    for i in range(n):
        kept[i, 0] = np.float32(after[i]) / np.float32(max(before[i], 1)) >= shrink_threshold
    return kept
