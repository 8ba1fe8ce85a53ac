"""The committed ``toy`` model: it loads like real weights, finds the prompted concept and not its hard
negatives, and keeps one id for a moving object. Frames come from benchmark seeds (never trained on).

Each test measures one behaviour on fixed frames and asserts a floor a little under what the committed model
measures there (``FLOORS``), so that a regression fails. The goals the model is still short of are the
benchmark's (``bench/results/README.md``), not assertions here; ``python tests/test_toy_model.py`` prints the
measured figures next to their floors (run it when a new model is committed, then set the floors).
"""

import numpy as np
import pytest
import torch

from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine.mask_ops import masks_to_boxes
from sam3_ros.eval.metrics import best_iou
from sam3_ros.eval.synthetic import World, WorldConfig, hard_negatives
from sam3_ros.models import TOY_DIR
from sam3_ros.settings import Settings

pytestmark = pytest.mark.skipif(not (TOY_DIR / "model.safetensors").is_file(), reason="toy model not trained")

FOUND_IOU = 0.7  # a clearly visible object counts as found by a confident detection at this mask IoU
# A little under what the committed model measures (in parentheses; ``measure_all``).
FLOORS = {
    "found_share": {11: 0.35, 12: 0.4},  # of clearly visible target objects, found at FOUND_IOU (0.43, 0.5)
    "hard_negative_detections": {11: 0, 12: 0},  # at most this many confident detections on distractors
    "absent_phrase_detections": 0,  # at most
    "one_id_frames": 28,  # of 30, frames showing exactly the one tracked id (30)
    "one_id_median_iou": 0.9,  # (0.95)
    "positive_exemplar_iou": {11: 0.0, 12: 0.0},  # best mask IoU with the boxed object (0.0: not found yet)
    "negative_exemplar_iou": {11: 0.1, 12: 0.1},  # at most (0.0)
}


def toy_engine(**overrides):
    return load_engine(Settings.default({"model": "toy", "devices": ["cpu"], **overrides}))


def confident(instances):
    keep = np.asarray(instances.scores) > 0.5
    return np.asarray(instances.masks)[keep], [c for c, k in zip(instances.concepts, keep) if k]


def measure_concept(seed: int) -> dict:
    """Fresh engines on four frames of benchmark seed ``seed``, prompted with its first concept: the share of
    clearly visible (>= 200 px) target objects found at ``FOUND_IOU``, and confident detections that are mostly
    a hard negative (IoU >= 0.3 with one)."""
    world = World(WorldConfig(seed=seed, frames=40))
    target = world.config.concepts[0]
    found = expected = wrong = 0
    for t in (0, 13, 26, 39):
        engine = toy_engine()  # a fresh engine: every instance is a detection of this frame
        engine.set_prompt(ConceptPrompt(phrases=[target]))
        frame = world.frame(t)
        masks, _ = confident(engine.step(Frame(frame.image, stamp_ns=t)))
        gt = frame.masks[[c == target and m.sum() >= 200 for c, m in zip(frame.concepts, frame.masks)]]
        others = frame.masks[[c in hard_negatives(world.config.concepts) for c in frame.concepts]]
        found += int((best_iou(gt, masks) >= FOUND_IOU).sum())
        if len(others):
            wrong += int((best_iou(masks, others) >= 0.3).sum())
        expected += len(gt)
    assert expected > 0, "the test frames must show the target"
    return {"found_share": found / expected, "hard_negative_detections": wrong}


def measure_absent_phrase() -> int:
    """Confident detections for a phrase of the vocabulary that is absent from the frame, and an unknown word."""
    world = World(WorldConfig(seed=11, frames=10))
    engine = toy_engine()
    engine.set_prompt(ConceptPrompt(phrases=[world.negative_concepts[0], "forklift"]))
    masks, _ = confident(engine.step(Frame(world.frame(0).image)))
    return len(masks)


def measure_one_id() -> dict:
    """One blue square among distractors, visible in all 30 frames: the confident ids per frame, the frames
    that show exactly one, and the median IoU of the best confident mask with the square."""
    world = World(WorldConfig(seed=5, frames=30, concepts=("blue square",), objects_per_concept=1, distractors=3))
    engine = toy_engine()
    engine.set_prompt(ConceptPrompt(phrases=["blue square"]))
    ids, ious = [], []
    for frame in world:
        out = engine.step(Frame(frame.image, stamp_ns=frame.stamp_ns))
        gt = frame.masks[[c == "blue square" for c in frame.concepts]]
        assert len(gt) == 1, "the test world must show its square in every frame"
        visible = np.asarray(out.masks).any(axis=(1, 2)) & (np.asarray(out.scores) > 0.5)  # (N, H, W), N may be 0
        ids.append([int(i) for i in np.asarray(out.ids)[visible]])
        ious.append(float(best_iou(gt, np.asarray(out.masks)[visible])[0]))
    return {
        "ids": ids,
        "distinct_ids": len({i for frame_ids in ids for i in frame_ids}),
        "one_id_frames": sum(len(f) == 1 for f in ids),
        "one_id_median_iou": float(np.median(ious)),
    }


def measure_exemplar(seed: int) -> dict:
    """SAM 3's visual prompt without a phrase, a box on the most visible object of seed ``seed``'s first frame:
    the best confident mask IoU with that object when the box is positive, and when it is negative."""
    frame = World(WorldConfig(seed=seed, frames=1)).frame(0)
    areas = frame.masks.reshape(len(frame.masks), -1).sum(1)
    obj = frame.masks[int(areas.argmax())][None]
    found = {}
    for label in (True, False):
        engine = toy_engine()
        engine.set_prompt(
            ConceptPrompt(boxes=masks_to_boxes(torch.from_numpy(obj)).numpy(), box_labels=np.array([label]))
        )
        masks, _ = confident(engine.step(Frame(frame.image)))
        found[label] = float(best_iou(obj, masks)[0])
    return {"positive_exemplar_iou": found[True], "negative_exemplar_iou": found[False]}


def test_toy_loads_from_its_directory_with_a_word_tokenizer():
    loaded = load_model("toy")
    assert loaded.model.config.image_size == 168
    assert next(loaded.model.parameters()).dtype == torch.float32  # stored in fp16, computed in fp32
    tokens = loaded.tokenize(["Red circle", "forklift"])
    assert tokens["input_ids"].shape == (2, 32)
    assert tokens["input_ids"][0, :4].tolist() == [2, 4, 8, 3]  # [BOS] red circle [EOS]
    assert tokens["input_ids"][1, :3].tolist() == [2, 1, 3]  # unknown word -> [UNK]


@pytest.mark.parametrize("seed", [11, 12])
def test_finds_the_prompted_concept_and_not_hard_negatives(seed):
    measured = measure_concept(seed)
    assert measured["found_share"] >= FLOORS["found_share"][seed], measured
    assert measured["hard_negative_detections"] <= FLOORS["hard_negative_detections"][seed], measured


def test_absent_phrase_finds_at_most_its_floor():
    assert measure_absent_phrase() <= FLOORS["absent_phrase_detections"]


def test_one_id_for_an_object_moving_across_30_frames():
    measured = measure_one_id()
    assert measured["distinct_ids"] == 1, f"ids per frame: {measured['ids']}"
    assert measured["one_id_frames"] >= FLOORS["one_id_frames"], measured
    assert measured["one_id_median_iou"] >= FLOORS["one_id_median_iou"], measured


@pytest.mark.parametrize("seed", [11, 12])
def test_exemplar_boxes_stay_at_their_floors(seed):
    """A positive box on an object finds it at least as well as the committed model does; the same box marked
    negative finds nothing there (at most the floor's IoU)."""
    measured = measure_exemplar(seed)
    assert measured["positive_exemplar_iou"] >= FLOORS["positive_exemplar_iou"][seed], measured
    assert measured["negative_exemplar_iou"] <= FLOORS["negative_exemplar_iou"][seed], measured


def measure_all() -> dict:
    """Every figure the floors bound, for the committed model."""
    return {
        **{f"seed{s}": {**measure_concept(s), **measure_exemplar(s)} for s in (11, 12)},
        "absent_phrase_detections": measure_absent_phrase(),
        **{k: v for k, v in measure_one_id().items() if k != "ids"},
    }


if __name__ == "__main__":
    import json

    print(json.dumps({"measured": measure_all(), "floors": FLOORS}, indent=1))
