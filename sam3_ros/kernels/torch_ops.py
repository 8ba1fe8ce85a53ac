"""Torch reference implementations that define what each CUDA kernel must compute.

They run on any device (CPU or GPU) and are what the engine uses when the CUDA kernels are not
available. Signatures here are the kernels' signatures (``sam3_ros.kernels.ops`` picks the kernel or
the reference). The RLE kernel's reference is ``sam3_ros.codec.rle.encode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask in ``a`` (N, H, W) with every mask in ``b`` (M, H, W), both boolean.

    Returns (N, M) float32. Two empty masks have IoU 0.
    """
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask sizes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression by mask IoU.

    Visits masks by descending score (ties: lower index first); a mask is suppressed if its IoU with
    an already kept mask is above ``iou_threshold``. Returns a (N,) boolean keep mask in input order.
    No host synchronization: the loop length is the (host-known) number of masks. A mask only ever
    suppresses lower-scoring ones, so detections under a score threshold may stay in the input: the
    keep flags of those above it are what NMS over those alone gives (transformers' ``nms_masks``).
    """
    return nms_from_iou(mask_iou(masks, masks), scores, iou_threshold)


def nms_from_iou(iou: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy suppression over a precomputed (N, N) IoU matrix; same rule and result as ``mask_nms``."""
    n = iou.shape[0]
    if iou.shape != (n, n) or scores.shape != (n,):
        raise ValueError(f"need an (N, N) IoU matrix and (N,) scores, got {tuple(iou.shape)} and {tuple(scores.shape)}")
    keep = torch.ones(n, dtype=torch.bool, device=iou.device)
    if n == 0:
        return keep
    order = torch.sort(scores, descending=True, stable=True).indices
    over = iou[order][:, order] > iou_threshold
    kept_sorted = torch.ones(n, dtype=torch.bool, device=iou.device)
    for i in range(1, n):
        kept_sorted[i] = ~(over[:i, i] & kept_sorted[:i]).any()
    keep[order] = kept_sorted
    return keep


def exclusive_masks(masks: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Masks that share no pixel within a group: transformers' video post-processing step
    ``Sam3VideoProcessor._apply_object_wise_non_overlapping_constraints`` (background 0).

    ``masks`` (N, H, W) bool, ``scores`` (N,) float32 (finite), ``groups`` (N,) int64. Within a group, a pixel
    covered by several masks stays with the one of highest score (ties: lower index), and only if that score
    is positive; the others lose it. Returns the new (N, H, W) bool masks. No host synchronization.
    """
    n = masks.shape[0]
    if masks.ndim != 3 or scores.shape != (n,) or groups.shape != (n,):
        raise ValueError(
            f"need (N, H, W) masks with (N,) scores and groups, got {tuple(masks.shape)}, "
            f"{tuple(scores.shape)} and {tuple(groups.shape)}"
        )
    if n == 0:
        return masks.clone()
    # objects sorted by group, then score (descending), then index: stable sorts, the last key first
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(groups[order], stable=True).indices]
    group = groups[order]
    covered = masks[order].flatten(1).to(torch.int32)
    # covering masks ranked above each one in its group: covering masks up to it, minus those up to the
    # end of the previous group, minus itself
    position = torch.arange(n, device=masks.device)
    first = torch.cat([torch.ones(1, dtype=torch.bool, device=masks.device), group[1:] != group[:-1]])
    group_start = torch.cummax(torch.where(first, position, torch.zeros_like(position)), dim=0).values
    upto = covered.cumsum(dim=0, dtype=torch.int32)
    before_group = torch.where((group_start > 0)[:, None], upto[(group_start - 1).clamp(min=0)], torch.zeros_like(upto))
    above = upto - covered - before_group
    kept = (covered > 0) & (above == 0) & (scores[order] > 0)[:, None]
    out = torch.empty_like(masks)
    out[order] = kept.view_as(masks)
    return out


@dataclass(frozen=True)
class MergeConfig:
    """Thresholds of the detection-track merge; defaults are ``Sam3VideoConfig``'s (transformers name in brackets)."""

    score_threshold: float = 0.5  # detections at or below take no part [score_threshold_detection]
    assoc_iou: float = 0.1  # det-track IoU that matches: keeps the track alive, blocks a spawn [assoc_iou_thresh]
    track_assoc_iou: float = (
        0.5  # a non-empty track below this with every detection is unmatched [trk_assoc_iou_thresh]
    )
    new_object_score: float = 0.7  # an unmatched detection spawns at or above this score [new_det_thresh]
    high_conf_score: float = 0.8  # reconditioning needs this detection score ... [high_conf_thresh]
    high_iou: float = 0.8  # ... and this IoU with its best track [high_iou_thresh]
    init_keep_alive: int = 30  # [init_trk_keep_alive]
    max_keep_alive: int = 30  # [max_trk_keep_alive]
    min_keep_alive: int = -1  # [min_trk_keep_alive]
    decrease_keep_alive_when_empty: bool = False  # [decrease_trk_keep_alive_for_empty_masklets]
    max_objects: int = 10000  # tracks + spawns; the lowest-scoring spawns beyond it are dropped [max_num_objects]

    def __post_init__(self):
        for name in (
            "score_threshold",
            "assoc_iou",
            "track_assoc_iou",
            "new_object_score",
            "high_conf_score",
            "high_iou",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MergeConfig.{name}: {value} is outside [0.0, 1.0]")
        if not self.min_keep_alive <= self.max_keep_alive:
            raise ValueError(
                f"MergeConfig: min_keep_alive {self.min_keep_alive} > max_keep_alive {self.max_keep_alive}"
            )
        if self.max_objects < 0:
            raise ValueError(f"MergeConfig.max_objects: {self.max_objects} is negative")


class MergePlan(NamedTuple):
    """What the merge decided for one frame (N detections, M tracks); all tensors on the inputs' device."""

    det_track: torch.Tensor  # (N,) int64: best track (first of equal IoUs) if matched, else -1
    det_new_id: torch.Tensor  # (N,) int64: id of the object this detection spawns, else -1
    trk_matched: torch.Tensor  # (M,) bool: some detection has IoU >= assoc_iou (keep-alive + 1)
    trk_unmatched: torch.Tensor  # (M,) bool: non-empty and no detection has IoU >= track_assoc_iou (keep-alive - 1)
    trk_recondition_det: torch.Tensor  # (M,) int64: high-confidence detection to recondition on, else -1
    keep_alive: torch.Tensor  # (M,) int64: updated counters; a track at <= 0 has gone unmatched too long
    next_id: torch.Tensor  # (1,) int64: the run's next unused object id


def merge_plan(
    iou: torch.Tensor,
    det_scores: torch.Tensor,
    trk_nonempty: torch.Tensor,
    keep_alive: torch.Tensor,
    next_id: torch.Tensor,
    config: MergeConfig = MergeConfig(),
    det_prompt: torch.Tensor | None = None,
    trk_prompt: torch.Tensor | None = None,
) -> MergePlan:
    """Match detections to tracks, spawn new objects and update keep-alive counters, without host syncs.

    ``iou`` (N, M) is the det x track mask IoU; ``det_scores`` (N,); ``trk_nonempty`` (M,) bool; ``keep_alive``
    (M,) int64; ``next_id`` (1,) int64; optional ``det_prompt`` (N,) / ``trk_prompt`` (M,) int64 prompt indices
    (pairs from different prompts never match). Follows transformers' ``Sam3VideoModel``: ``_associate_det_trk``
    (many tracks may match one detection; with no tracks at all every valid detection spawns, as there), the
    ``max_num_objects`` limit (ties: lower index), and the keep-alive steps of ``_process_hotstart`` (matched:
    +1 up to max; unmatched: -1 down to min, in that order). New ids go in detection order.
    """
    n, m = check_merge_inputs(iou, det_scores, trk_nonempty, keep_alive, next_id, det_prompt, trk_prompt)
    device = iou.device
    if det_prompt is not None:
        iou = torch.where(det_prompt[:, None] == trk_prompt[None, :], iou, torch.zeros_like(iou))
    valid = det_scores > config.score_threshold
    if m:
        best_trk = iou.argmax(dim=1)
        best_iou = iou.gather(1, best_trk[:, None])[:, 0]
        matched = valid & (best_iou >= config.assoc_iou)
        is_new = valid & (det_scores >= config.new_object_score) & ~matched
    else:
        best_trk = torch.zeros(n, dtype=torch.long, device=device)
        best_iou = torch.zeros(n, dtype=iou.dtype, device=device)
        matched = torch.zeros(n, dtype=torch.bool, device=device)
        is_new = valid
    det_track = torch.where(matched, best_trk, torch.full_like(best_trk, -1))

    # Max-object limit: rank each would-be spawn among the others by (score desc, index asc).
    index = torch.arange(n, device=device)
    ahead = (det_scores[None, :] > det_scores[:, None]) | (
        (det_scores[None, :] == det_scores[:, None]) & (index[None, :] < index[:, None])
    )
    rank = (ahead & is_new[None, :]).sum(dim=1)
    spawn = is_new & (rank < max(0, config.max_objects - m))
    spawn_i = spawn.long()
    det_new_id = torch.where(spawn, next_id + torch.cumsum(spawn_i, 0) - 1, torch.full_like(spawn_i, -1))

    pair_valid = valid[:, None]
    trk_matched = ((iou >= config.assoc_iou) & pair_valid).any(dim=0)
    trk_confirmed = ((iou >= config.track_assoc_iou) & pair_valid).any(dim=0)
    nonempty = trk_nonempty.bool()
    trk_unmatched = nonempty & ~trk_confirmed
    alive = keep_alive.long()
    alive = torch.where(trk_matched, (alive + 1).clamp(max=config.max_keep_alive), alive)
    alive = torch.where(trk_unmatched, (alive - 1).clamp(min=config.min_keep_alive), alive)
    if config.decrease_keep_alive_when_empty:
        alive = torch.where(~nonempty, (alive - 1).clamp(min=config.min_keep_alive), alive)

    # Reconditioning: the reference's dict {best track: detection} keeps the last detection written.
    high = valid & ~is_new & (det_scores >= config.high_conf_score) & (best_iou >= config.high_iou)
    targets = high[:, None] & (best_trk[:, None] == torch.arange(m, device=device)[None, :])
    trk_recondition_det = torch.where(targets, index[:, None], torch.full_like(index[:, None], -1))
    trk_recondition_det = (
        trk_recondition_det.amax(dim=0) if n else torch.full((m,), -1, dtype=torch.long, device=device)
    )
    return MergePlan(
        det_track, det_new_id, trk_matched, trk_unmatched, trk_recondition_det, alive, next_id + spawn_i.sum()
    )


def check_merge_inputs(iou, det_scores, trk_nonempty, keep_alive, next_id, det_prompt, trk_prompt) -> tuple[int, int]:
    """(N, M) of a merge's inputs; ``ValueError`` naming the first input of the wrong shape."""
    if iou.ndim != 2:
        raise ValueError(f"merge: iou must be (N, M), got shape {tuple(iou.shape)}")
    n, m = iou.shape
    expected = {
        "det_scores": (det_scores, (n,)),
        "trk_nonempty": (trk_nonempty, (m,)),
        "keep_alive": (keep_alive, (m,)),
        "next_id": (next_id, (1,)),
    }
    if (det_prompt is None) != (trk_prompt is None):
        raise ValueError("merge: give both det_prompt and trk_prompt, or neither")
    if det_prompt is not None:
        expected.update(det_prompt=(det_prompt, (n,)), trk_prompt=(trk_prompt, (m,)))
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"merge: {name} must have shape {shape} for iou of shape {(n, m)}, got {tuple(tensor.shape)}"
            )
    return n, m
