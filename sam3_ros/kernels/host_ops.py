"""Compiled host (CPU) versions of the merge's kernels: what ``sam3_ros.kernels.ops`` runs for CPU tensors.

Same signatures and results as ``sam3_ros.kernels.torch_ops``, bit for bit. On the CPU the references are a few
dozen small tensor operations per frame (about 0.5 ms for 16 objects on 2 cores, most of it per-operation
overhead); these are one compiled loop each. Thresholds are compared in float32, as torch compares a float32
tensor with a Python float.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, types
from numba.extending import intrinsic

from .torch_ops import MergeConfig, MergePlan, check_merge_inputs

F32 = np.float32


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask in ``a`` (N, H, W) with every mask in ``b`` (M, H, W), both boolean CPU tensors: (N, M)
    float32 (see ``torch_ops.mask_iou``)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask sizes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    iou = np.empty((a.shape[0], b.shape[0]), F32)
    packed_iou(_packed(a), _packed(b), iou)
    return torch.from_numpy(iou)


def _packed(masks: torch.Tensor) -> np.ndarray:
    """(N, H, W) bool -> (N, words) uint64, see ``pack_positive``."""
    pixels = int(np.prod(masks.shape[1:]))
    return pack_positive(np.ascontiguousarray(masks.numpy().reshape(masks.shape[0], pixels)).view(np.uint8))


@njit(cache=True, nogil=True)
def pack_positive(values):
    """(N, P) values -> (N, ceil(P / 64)) uint64: bit ``p % 64`` of word ``p // 64`` is set where ``values[i, p]``
    is above 0 (a bool mask, or the logits of one)."""
    n, p = values.shape
    bits = np.zeros((n, (p + 63) // 64), np.uint64)
    for i in range(n):
        for k in range(p):  # branch-free: noisy masks would mispredict every other pixel
            bits[i, k >> 6] |= np.uint64(values[i, k] > 0) << np.uint64(k & 63)
    return bits


@intrinsic
def _popcount(typingctx, word):
    """The number of set bits of a uint64 (the CPU's popcount instruction, or LLVM's expansion of it)."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@njit(cache=True, nogil=True)
def packed_iou(a, b, iou):
    """``iou[i, j]`` of the bit-packed masks ``a[i]`` and ``b[j]`` ((N, words) and (M, words) uint64): the counts
    are exact integers, the quotient the reference's float32 one."""
    area_a, area_b = np.zeros(a.shape[0], np.int64), np.zeros(b.shape[0], np.int64)
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            area_a[i] += _popcount(a[i, k])
    for j in range(b.shape[0]):
        for k in range(b.shape[1]):
            area_b[j] += _popcount(b[j, k])
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            inter = np.int64(0)
            for k in range(a.shape[1]):
                inter += _popcount(a[i, k] & b[j, k])
            union = area_a[i] + area_b[j] - inter
            iou[i, j] = F32(inter) / F32(union) if union > 0 else F32(0)


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
    """The detection-track merge of CPU tensors (see ``torch_ops.merge_plan``)."""
    n, m = check_merge_inputs(iou, det_scores, trk_nonempty, keep_alive, next_id, det_prompt, trk_prompt)
    prompts = det_prompt is not None
    # det_track, det_new_id, trk_matched, trk_unmatched, trk_recondition_det, keep_alive
    out = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(m, np.bool_), np.empty(m, np.bool_))
    out += (np.empty(m, np.int64), np.empty(m, np.int64))
    spawned = merge_plan_arrays(
        iou.float().numpy(),
        det_scores.float().numpy(),
        trk_nonempty.bool().numpy(),
        keep_alive.long().numpy(),
        det_prompt.long().numpy() if prompts else np.zeros(n, np.int64),
        trk_prompt.long().numpy() if prompts else np.zeros(m, np.int64),
        *merge_settings(config),
        int(next_id[0]),
        *out,
    )
    return MergePlan(*(torch.from_numpy(x) for x in out), next_id + spawned)


def merge_settings(config: MergeConfig) -> tuple[np.ndarray, np.ndarray]:
    """``merge_plan_arrays``' ``thresholds`` (float32) and ``limits`` (int64) of ``config``."""
    thresholds = (
        config.score_threshold,
        config.assoc_iou,
        config.track_assoc_iou,
        config.new_object_score,
        config.high_conf_score,
        config.high_iou,
    )
    limits = (config.max_keep_alive, config.min_keep_alive, config.decrease_keep_alive_when_empty, config.max_objects)
    return np.array(thresholds, F32), np.array(limits, np.int64)


@njit(cache=True, nogil=True)
def merge_plan_arrays(
    iou,
    scores,
    nonempty,
    keep_alive,
    det_prompt,
    trk_prompt,
    thresholds,
    limits,
    next_id,
    det_track,
    det_new_id,
    trk_matched,
    trk_unmatched,
    trk_recondition_det,
    alive,
):
    """``torch_ops.merge_plan`` in loops on arrays (``thresholds`` and ``limits`` from ``merge_settings``), into the
    output arrays; returns how many detections spawn."""
    n, m = iou.shape
    score_threshold, assoc_iou, track_assoc_iou, new_object, high_conf, high_iou = thresholds
    max_keep_alive, min_keep_alive, decrease_when_empty, max_objects = limits
    valid = scores > score_threshold
    best_trk, best_iou = np.zeros(n, np.int64), np.zeros(n, F32)
    is_new = valid.copy()
    for d in range(n):
        for t in range(m):  # the first of equal IoUs, as argmax
            value = iou[d, t] if det_prompt[d] == trk_prompt[t] else F32(0)
            if t == 0 or value > best_iou[d]:
                best_trk[d], best_iou[d] = t, value
        matched = m > 0 and valid[d] and best_iou[d] >= assoc_iou
        det_track[d] = best_trk[d] if matched else -1
        if m > 0:
            is_new[d] = valid[d] and scores[d] >= new_object and not matched
    room = max(0, max_objects - m)
    spawned = 0
    for d in range(n):  # in detection order, the spawns ranked by score (ties: lower index) within the room
        rank = 0
        for e in range(n):
            if is_new[e] and (scores[e] > scores[d] or (scores[e] == scores[d] and e < d)):
                rank += 1
        spawn = is_new[d] and rank < room
        det_new_id[d] = next_id + spawned if spawn else -1
        spawned += spawn
    for t in range(m):
        matched = confirmed = False
        recondition = -1
        for d in range(n):
            value = iou[d, t] if det_prompt[d] == trk_prompt[t] else F32(0)
            matched |= valid[d] and value >= assoc_iou
            confirmed |= valid[d] and value >= track_assoc_iou
            high = valid[d] and not is_new[d] and scores[d] >= high_conf and best_iou[d] >= high_iou
            if high and best_trk[d] == t:
                recondition = d  # the last detection written, as the reference's dict
        trk_matched[t], trk_unmatched[t], trk_recondition_det[t] = matched, nonempty[t] and not confirmed, recondition
        count = keep_alive[t]
        if matched:
            count = min(count + 1, max_keep_alive)
        if trk_unmatched[t]:
            count = max(count - 1, min_keep_alive)
        if decrease_when_empty and not nonempty[t]:
            count = max(count - 1, min_keep_alive)
        alive[t] = count
    return spawned
