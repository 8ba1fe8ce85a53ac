"""The merge references (``torch_ops.merge_plan``, ``torch_ops.exclusive_masks``) and the host loops (``host_ops``)
against brute force and against transformers' own code."""

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam3_ros.engine.transformers_loop import video_processor
from sam3_ros.kernels import host_ops, torch_ops
from sam3_ros.kernels.torch_ops import MergeConfig, exclusive_masks, mask_iou

F32 = np.float32
# every merge_plan test runs on the reference and on the host loop
BOTH_MERGES = pytest.mark.parametrize(
    "merge_plan", [torch_ops.merge_plan, host_ops.merge_plan], ids=["reference", "host"]
)


def _brute_merge(iou, scores, nonempty, keep_alive, next_id, cfg, det_prompt, trk_prompt):
    """Loops written after Sam3VideoModel's _associate_det_trk, max_num_objects limit and keep-alive steps."""
    n, m = iou.shape
    iou = [[float(iou[d, t]) if det_prompt[d] == trk_prompt[t] else 0.0 for t in range(m)] for d in range(n)]
    s = [F32(x) for x in scores]
    dets = [d for d in range(n) if s[d] > F32(cfg.score_threshold)]
    best = {d: max(range(m), key=lambda t: (iou[d][t], -t)) for d in dets} if m else {}
    matched = {d for d in dets if m and iou[d][best[d]] >= F32(cfg.assoc_iou)}
    if m == 0:
        new = list(dets)
    else:
        new = [d for d in dets if s[d] >= F32(cfg.new_object_score) and d not in matched]
    spawn = sorted(sorted(new, key=lambda d: (-s[d], d))[: max(0, cfg.max_objects - m)])
    det_track = [best[d] if d in matched else -1 for d in range(n)]
    det_new_id = [next_id + spawn.index(d) if d in spawn else -1 for d in range(n)]
    trk_matched = [any(iou[d][t] >= F32(cfg.assoc_iou) for d in dets) for t in range(m)]
    trk_unmatched = [
        bool(nonempty[t]) and not any(iou[d][t] >= F32(cfg.track_assoc_iou) for d in dets) for t in range(m)
    ]
    alive = list(keep_alive)
    for t in range(m):
        if trk_matched[t]:
            alive[t] = min(cfg.max_keep_alive, alive[t] + 1)
        if trk_unmatched[t]:
            alive[t] = max(cfg.min_keep_alive, alive[t] - 1)
        if cfg.decrease_keep_alive_when_empty and not nonempty[t]:
            alive[t] = max(cfg.min_keep_alive, alive[t] - 1)
    recondition = [-1] * m
    for d in dets:
        if m and d not in new and s[d] >= F32(cfg.high_conf_score) and iou[d][best[d]] >= F32(cfg.high_iou):
            recondition[best[d]] = d
    return dict(
        det_track=det_track,
        det_new_id=det_new_id,
        trk_matched=trk_matched,
        trk_unmatched=trk_unmatched,
        trk_recondition_det=recondition,
        keep_alive=alive,
        next_id=[next_id + len(spawn)],
    )


def random_merge_case(seed, n, m, prompts=1):
    g = torch.Generator().manual_seed(seed)
    iou = torch.round(torch.rand(n, m, generator=g) * 10) / 10  # values exactly at thresholds, ties
    iou[torch.rand(n, m, generator=g) < 0.8] = 0.0  # sparse, so that some detections spawn
    scores = torch.round(torch.rand(n, generator=g) * 10) / 10  # score ties, and scores at the thresholds
    nonempty = torch.rand(m, generator=g) < 0.8
    keep_alive = torch.randint(-1, 31, (m,), generator=g)
    next_id = torch.tensor([int(torch.randint(0, 50, (1,), generator=g))])
    det_prompt = torch.randint(0, prompts, (n,), generator=g)
    trk_prompt = torch.randint(0, prompts, (m,), generator=g)
    return iou, scores, nonempty, keep_alive, next_id, det_prompt, trk_prompt


CONFIGS = [
    MergeConfig(),
    MergeConfig(max_objects=9, decrease_keep_alive_when_empty=True),
    MergeConfig(score_threshold=0.0, assoc_iou=0.0, new_object_score=0.0, max_objects=0),
    MergeConfig(high_conf_score=0.3, high_iou=0.2, track_assoc_iou=0.3),
]


@BOTH_MERGES
@pytest.mark.parametrize(
    "n, m, prompts", [(0, 0, 1), (0, 4, 1), (5, 0, 1), (1, 1, 1), (12, 7, 1), (20, 3, 2), (30, 9, 3)]
)
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_merge_plan_matches_brute_force(n, m, prompts, config, merge_plan):
    cfg = CONFIGS[config]
    for seed in range(3):
        iou, scores, nonempty, alive, next_id, det_prompt, trk_prompt = random_merge_case(
            seed * 97 + n + m, n, m, prompts
        )
        plan = merge_plan(iou, scores, nonempty, alive, next_id, cfg, det_prompt, trk_prompt)
        expected = _brute_merge(
            iou.numpy(),
            scores.numpy(),
            nonempty.tolist(),
            alive.tolist(),
            int(next_id),
            cfg,
            det_prompt.tolist(),
            trk_prompt.tolist(),
        )
        assert {k: v.tolist() for k, v in plan._asdict().items()} == expected, (seed, n, m)
        assert plan.det_new_id.dtype == plan.keep_alive.dtype == plan.next_id.dtype == torch.int64


@BOTH_MERGES
def test_merge_plan_object_limit_keeps_best_scores_lower_index_on_ties(merge_plan):
    scores = torch.tensor([0.8, 0.9, 0.8, 0.8, 0.95])
    iou = torch.zeros(5, 1)
    iou[4, 0] = 0.6  # detection 4 matches the one track: no spawn
    plan = merge_plan(
        iou, scores, torch.ones(1, dtype=torch.bool), torch.tensor([3]), torch.tensor([10]), MergeConfig(max_objects=3)
    )
    assert plan.det_new_id.tolist() == [10, 11, -1, -1, -1]  # room for 2: 0.9, then the first 0.8
    assert plan.det_track.tolist() == [-1, -1, -1, -1, 0] and plan.keep_alive.tolist() == [4]
    assert int(plan.next_id) == 12


@BOTH_MERGES
def test_merge_plan_without_prompts_equals_one_prompt(merge_plan):
    iou, scores, nonempty, alive, next_id, _, _ = random_merge_case(3, 10, 6)
    one = torch.zeros(10, dtype=torch.long), torch.zeros(6, dtype=torch.long)
    a = merge_plan(iou, scores, nonempty, alive, next_id)
    b = merge_plan(iou, scores, nonempty, alive, next_id, MergeConfig(), *one)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@BOTH_MERGES
def test_merge_plan_bad_input(merge_plan):
    iou, scores, nonempty, alive, next_id, det_prompt, trk_prompt = random_merge_case(0, 4, 3)
    with pytest.raises(ValueError, match="det_scores must have shape"):
        merge_plan(iou, scores[:3], nonempty, alive, next_id)
    with pytest.raises(ValueError, match="both det_prompt and trk_prompt"):
        merge_plan(iou, scores, nonempty, alive, next_id, MergeConfig(), det_prompt)
    with pytest.raises(ValueError, match="MergeConfig.assoc_iou"):
        MergeConfig(assoc_iou=1.5)
    with pytest.raises(ValueError, match="min_keep_alive"):
        MergeConfig(min_keep_alive=5, max_keep_alive=2)


def _blob_masks(g, count, size=32):
    masks = torch.zeros(count, size, size)
    for i in range(count):
        x, y = torch.randint(0, size - 8, (2,), generator=g).tolist()
        w, h = torch.randint(3, 12, (2,), generator=g).tolist()
        masks[i, y : y + h, x : x + w] = 1.0
    return masks * 2 - 1  # logits: > 0 inside


@BOTH_MERGES
@pytest.mark.parametrize("seed", range(4))
def test_merge_plan_matches_transformers_association(seed, merge_plan):
    """Same decisions as Sam3VideoModel._associate_det_trk + the streaming keep-alive update, on real masks."""
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoModel

    g = torch.Generator().manual_seed(seed)
    cfg = MergeConfig(high_conf_score=0.6, high_iou=0.5)
    trk_masks = _blob_masks(g, 6)
    trk_masks[2] = -1.0  # an empty track
    det_masks = torch.cat([trk_masks[:4].roll(int(torch.randint(0, 3, (1,), generator=g)), dims=2), _blob_masks(g, 5)])
    det_scores = 0.5 + 0.5 * torch.rand(len(det_masks), generator=g)  # all valid, as the reference receives them
    det_prompt = torch.randint(0, 2, (len(det_masks),), generator=g)
    trk_prompt = torch.randint(0, 2, (len(trk_masks),), generator=g)
    obj_ids = [3, 4, 8, 9, 12, 20]
    alive_before = {i: int(v) for i, v in zip(obj_ids, torch.randint(-1, 31, (6,), generator=g))}

    model = SimpleNamespace(
        assoc_iou_thresh=cfg.assoc_iou,
        trk_assoc_iou_thresh=cfg.track_assoc_iou,
        new_det_thresh=cfg.new_object_score,
        high_conf_thresh=cfg.high_conf_score,
        high_iou_thresh=cfg.high_iou,
        hotstart_delay=15,
        init_trk_keep_alive=cfg.init_keep_alive,
        max_trk_keep_alive=cfg.max_keep_alive,
        min_trk_keep_alive=cfg.min_keep_alive,
        decrease_trk_keep_alive_for_empty_masklets=False,
    )
    new_inds, unmatched_ids, det_to_matched, recondition, empty_ids = Sam3VideoModel._associate_det_trk(
        model, det_masks, det_scores, trk_masks, obj_ids, det_prompt, trk_prompt
    )
    new_ids = list(range(21, 21 + len(new_inds)))
    metadata = dict(
        obj_first_frame_idx=dict.fromkeys(obj_ids, 0),
        unmatched_frame_inds=defaultdict(list),
        trk_keep_alive=dict(alive_before),
        overlap_pair_to_frame_inds=defaultdict(list),
        removed_obj_ids=set(),
        suppressed_obj_ids=defaultdict(set),
    )
    Sam3VideoModel._process_hotstart(
        model, None, 1, False, det_to_matched, new_ids, empty_ids, unmatched_ids, metadata, streaming=True
    )

    ours = merge_plan(
        mask_iou(det_masks > 0, trk_masks > 0),
        det_scores,
        (trk_masks > 0).flatten(1).any(1),
        torch.tensor([alive_before[i] for i in obj_ids]),
        torch.tensor([21]),
        cfg,
        det_prompt,
        trk_prompt,
    )
    ids = torch.tensor(obj_ids)
    spawned = torch.nonzero(ours.det_new_id >= 0)[:, 0].tolist()
    assert spawned == new_inds and ours.det_new_id[spawned].tolist() == new_ids
    assert ids[ours.trk_unmatched].tolist() == unmatched_ids
    assert sorted({i for lst in det_to_matched.values() for i in lst}) == ids[ours.trk_matched].tolist()
    for d, matched in det_to_matched.items():
        assert (ours.det_track[d] >= 0) == bool(matched)
        if matched:
            assert obj_ids[int(ours.det_track[d])] in matched
    assert {obj_ids[t]: int(d) for t, d in enumerate(ours.trk_recondition_det) if d >= 0} == recondition
    expected_alive = [metadata["trk_keep_alive"][i] for i in obj_ids]
    assert ours.keep_alive.tolist() == expected_alive
    assert [metadata["trk_keep_alive"][i] for i in new_ids] == [cfg.init_keep_alive] * len(new_ids)
    assert int(ours.next_id) == 21 + len(new_ids)


def _brute_exclusive(masks, scores, groups):
    """Pixel by pixel: the covering mask of highest score in each group (lower index on ties), if positive."""
    n, h, w = masks.shape
    out = np.zeros((n, h, w), bool)
    for y in range(h):
        for x in range(w):
            for g in set(groups):
                covering = [i for i in range(n) if groups[i] == g and masks[i, y, x]]
                if covering:
                    best = max(covering, key=lambda i: (scores[i], -i))
                    out[best, y, x] = scores[best] > 0
    return out


@pytest.mark.parametrize("seed", range(6))
def test_exclusive_masks_matches_brute_force_and_transformers_postprocessing(seed):
    g = torch.Generator().manual_seed(seed)
    n = 2 + seed
    masks = torch.rand(n, 9, 11, generator=g) > 0.4
    scores = torch.round(torch.rand(n, generator=g) * 4) / 4  # ties, and zeros (which keep no pixel)
    groups = torch.randint(-1, 2, (n,), generator=g)
    ours = exclusive_masks(masks, scores, groups)
    assert np.array_equal(ours.numpy(), _brute_exclusive(masks.numpy(), scores.tolist(), groups.tolist()))
    # as Sam3VideoProcessor.postprocess_outputs calls it: tracker scores, background 0, one group per prompt
    theirs = (
        video_processor()._apply_object_wise_non_overlapping_constraints(
            masks[:, None], scores[:, None], background_value=0, prompt_ids=groups.tolist()
        )[:, 0]
        > 0
    )
    assert torch.equal(ours, theirs)
    assert exclusive_masks(masks[:0], scores[:0], groups[:0]).shape == (0, 9, 11)
    with pytest.raises(ValueError, match="scores and groups"):
        exclusive_masks(masks, scores[:1], groups)


@pytest.mark.parametrize("n, m, h, w", [(0, 3, 4, 4), (5, 0, 4, 4), (7, 9, 32, 32), (3, 4, 17, 5)])
def test_host_mask_iou_equals_the_reference(n, m, h, w):
    g = torch.Generator().manual_seed(n * m + h)
    a, b = torch.rand(n, h, w, generator=g) > 0.6, torch.rand(m, h, w, generator=g) > 0.4
    if n > 1 and m > 1:
        a[0], b[0], b[1] = False, False, a[1]  # empty against empty: 0; identical: 1
    assert torch.equal(host_ops.mask_iou(a, b), mask_iou(a, b))
    transposed = a.transpose(1, 2)  # not contiguous
    assert torch.equal(host_ops.mask_iou(transposed, transposed), mask_iou(transposed, transposed))
