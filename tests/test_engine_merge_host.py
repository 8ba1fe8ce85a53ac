"""The merge's decisions on the host (``merge.merge_on_host``, one compiled pass) equal those of the tensor operations
the engine runs on a GPU (``associate``, re-conditioning, ``occlusion_suppression``, the bookkeeping), on crafted
frames that reach every rule (ties, IoUs at the thresholds, duplicated and empty masks, objects occluded at different
frames, click-created objects, expiry), and frame by frame in the engine."""

import copy

import numpy as np
import pytest
import torch

from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine.engine import Engine, _Tracked
from sam3_ros.pipeline.messages import instances_to_message
from sam3_ros.settings import Settings

LOW = 16


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-random")


def engine_with(loaded, **overrides):
    settings = Settings.default({"devices": ["cpu"], "tracking.max_objects": 12, **overrides})
    return load_engine(settings, loaded)


def crafted(seed, d, n, concepts=2):
    """Detections and tracked objects over ``concepts`` concepts: masks repeated (IoU 1) and empty, scores on a grid
    (ties, values at the thresholds); the objects' state (last occluded and confirmed frames, scores) at random."""
    rng = np.random.default_rng(seed)
    blocks = (rng.random((max(d, n) + 1, LOW, LOW)) > 0.5).astype(np.float32) * 2 - 1
    det_masks = blocks[rng.integers(0, len(blocks), d)]
    trk_masks = blocks[rng.integers(0, len(blocks), n)]
    if n > 2:
        trk_masks[1] = -1.0  # empty: occluded now
        trk_masks[2] = trk_masks[0]
    if d and n:
        det_masks[0] = trk_masks[0]
    dets = {
        "masks": torch.from_numpy(det_masks),
        "scores": torch.from_numpy((np.round(rng.random(d) * 10) / 10).astype(np.float32)),
        "valid": torch.from_numpy(rng.random(d) > 0.2),
        "concept": torch.from_numpy(rng.integers(0, concepts, d)),
    }
    live = sorted(rng.choice(12, n, replace=False).tolist())
    state = {
        "concept": rng.integers(-1, concepts, n),  # -1: click-created
        "last_occluded": rng.choice([-1, 3, 5, 5, 8], n),
        "last_detected": rng.integers(0, 10, n),
        "score": np.round(rng.random(n) * 4) / 4,
    }
    object_scores = torch.from_numpy((np.round(rng.standard_normal((n, 1)) * 4) / 4).astype(np.float32))
    return dets, torch.from_numpy(trk_masks), live, state, object_scores


def decide(engine, on_host, dets, trk, live, state, object_scores, frame, recondition_now):
    slots = torch.tensor(live, dtype=torch.long)
    engine._concept[slots] = torch.from_numpy(state["concept"])
    engine._last_occluded[slots] = torch.from_numpy(state["last_occluded"])
    engine._last_detected[slots] = torch.from_numpy(state["last_detected"])
    engine._score[slots] = torch.from_numpy(state["score"]).float()
    tracked = _Tracked(live, slots, {"object_score_logits": object_scores}, trk.clone(), engine._concept[slots])
    method = Engine._decide_on_host if on_host else Engine._decide_on_device
    decided = method(engine, dets, tracked, frame, recondition_now)
    after = (engine._last_occluded.clone(), engine._last_detected.clone(), engine._score.clone(), tracked.logits)
    return decided, after


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tracking.assoc_iou_threshold": 0.0, "tracking.track_assoc_iou_threshold": 0.0},  # every pair matches
        {"tracking.assoc_iou_threshold": 0.5, "detection.new_object_threshold": 0.5, "tracking.keep_alive_frames": 2},
        {"tracking.assoc_iou_threshold": 1.0, "detection.score_threshold": 0.0, "detection.new_object_threshold": 0.0},
    ],
)
@pytest.mark.parametrize("d, n", [(0, 0), (0, 5), (6, 0), (1, 1), (9, 7), (14, 12)])
def test_host_decisions_equal_the_tensor_operations(loaded, overrides, d, n):
    engine = engine_with(loaded, **overrides)
    engine.thresholds.high_conf = 0.25  # reachable by the crafted scores: re-conditioning happens
    engine.thresholds.high_iou = 0.5
    for seed in range(4):
        args = crafted(seed * 31 + d + n, d, n)
        for frame, recondition_now in ((9, True), (10, False)):
            host, host_state = decide(copy.deepcopy(engine), True, *args, frame, recondition_now and n > 0)
            device, device_state = decide(copy.deepcopy(engine), False, *args, frame, recondition_now and n > 0)
            for name in ("is_new", "det_scores", "expired", "recondition_host", "track_scores"):
                assert np.array_equal(getattr(host, name), getattr(device, name)), (name, seed, frame)
            assert torch.equal(host.recondition, device.recondition)
            assert torch.equal(host.recondition_det, device.recondition_det)
            assert all(torch.equal(a, b) for a, b in zip(host_state, device_state)), (seed, frame)


def test_the_rules_are_reached(loaded):
    """The crafted frames exercise what the equality above is about: spawns, re-conditioning, suppression, expiry."""
    engine = engine_with(loaded, **{"tracking.keep_alive_frames": 2})
    engine.thresholds.high_conf, engine.thresholds.high_iou = 0.25, 0.5
    seen = dict(is_new=0, recondition=0, suppressed=0, expired=0)
    for seed in range(8):
        decided, state = decide(copy.deepcopy(engine), True, *crafted(seed, 9, 7), 9, True)
        seen["is_new"] += decided.is_new.sum()
        seen["recondition"] += decided.recondition_host.sum()
        seen["suppressed"] += int((state[3] == -10.0).flatten(1).all(1).sum())
        seen["expired"] += decided.expired.sum()
    assert all(count > 0 for count in seen.values()), seen


def test_the_engine_on_the_host_publishes_what_the_tensor_merge_gives(loaded, monkeypatch):
    """Two engines on the same frames, one with the merge's tensor operations: the same InstanceArrays and state."""
    overrides = {
        "tracking.max_objects": 2,  # evictions
        "detection.score_threshold": 0.0,
        "detection.new_object_threshold": 0.0,
        "tracking.at_max_objects": "evict_lowest",
        "tracking.assoc_iou_threshold": 1.0,  # every detection is new: the limit is reached
        "tracking.keep_alive_frames": 3,
        "tracking.recondition_every": 1,
    }
    host, device = engine_with(loaded, **overrides), engine_with(loaded, **overrides)
    for engine in (host, device):
        engine.set_prompt(ConceptPrompt(phrases=["red box", "blue box"]))
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    published = 0
    for t in range(12):
        frame = background.copy()
        frame[20 + 3 * t : 60 + 3 * t, 30:80] = (220, 30, 30)
        a = instances_to_message(host.step(Frame(frame, stamp_ns=t + 1)))
        with monkeypatch.context() as patch:
            patch.setattr(Engine, "_merges_on_host", lambda *_: False)
            b = instances_to_message(device.step(Frame(frame, stamp_ns=t + 1)))
        assert len(a.instances) == len(b.instances)
        published += len(a.instances)
        for x, y in zip(a.instances, b.instances):
            assert (x.id, x.concept, x.score, x.age, x.detected) == (y.id, y.concept, y.score, y.age, y.detected)
            assert np.array_equal(x.mask_rle, y.mask_rle)
        for name in ("_last_occluded", "_last_detected", "_score", "_ids"):
            assert torch.equal(getattr(host, name), getattr(device, name)), (name, t)
    assert published > 0 and host.counters == device.counters
    assert host.counters.objects_evicted > 0, host.counters
