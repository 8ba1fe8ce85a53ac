"""The committed ``toy`` model: it loads like real weights, finds the prompted concept and not its hard
negatives, and keeps one id for a moving object. Frames come from benchmark seeds (never trained on)."""

import numpy as np
import pytest
import torch

from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine.mask_ops import masks_to_boxes
from sam3_ros.eval.synthetic import World, WorldConfig, hard_negatives
from sam3_ros.kernels.reference import mask_iou
from sam3_ros.models import TOY_DIR
from sam3_ros.settings import Settings

pytestmark = pytest.mark.skipif(not (TOY_DIR / "model.safetensors").is_file(), reason="toy model not trained")


def toy_engine(**overrides):
    return load_engine(Settings.default({"model": "toy", "devices": ["cpu"], **overrides}))


def confident(instances):
    keep = np.asarray(instances.scores) > 0.5
    return np.asarray(instances.masks)[keep], [c for c, k in zip(instances.concepts, keep) if k]


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
        if len(masks) and len(gt):
            found += int((mask_iou(torch.from_numpy(gt), torch.from_numpy(masks)).amax(1) >= 0.7).sum())
        if len(masks) and len(others):  # a detection that is mostly a distractor
            wrong += int((mask_iou(torch.from_numpy(masks), torch.from_numpy(others)).amax(1) >= 0.3).sum())
        expected += len(gt)
    assert expected > 0
    assert found >= 0.8 * expected, f"{target}: found {found} of {expected} clearly visible objects"
    assert wrong == 0, f"{target}: {wrong} detections on hard negatives"


def test_absent_phrase_finds_nothing():
    world = World(WorldConfig(seed=11, frames=10))
    engine = toy_engine()
    engine.set_prompt(ConceptPrompt(phrases=[world.negative_concepts[0], "forklift"]))
    masks, _ = confident(engine.step(Frame(world.frame(0).image)))
    assert len(masks) == 0


def test_one_id_for_an_object_moving_across_30_frames():
    # one blue square among distractors, visible in every frame (no late entry, no early exit)
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
        if visible.any():
            ious.append(float(mask_iou(torch.from_numpy(gt), torch.as_tensor(np.asarray(out.masks)[visible])).max()))
    assert len({i for frame_ids in ids for i in frame_ids}) == 1, f"ids per frame: {ids}"
    assert sum(len(f) == 1 for f in ids) >= 28 and np.median(ious) >= 0.8, (ids, ious)


@pytest.mark.parametrize("seed", [11, 12])
def test_a_positive_exemplar_box_proposes_its_object_and_a_negative_one_suppresses_it(seed):
    """SAM 3's visual prompt without a phrase: a positive box on an object finds it; the same box marked
    negative finds nothing there."""
    frame = World(WorldConfig(seed=seed, frames=1)).frame(0)
    areas = frame.masks.reshape(len(frame.masks), -1).sum(1)
    obj = frame.masks[int(areas.argmax())]  # the most visible object
    found = {}
    for label in (True, False):
        engine = toy_engine()
        engine.set_prompt(
            ConceptPrompt(boxes=masks_to_boxes(torch.from_numpy(obj[None])).numpy(), box_labels=np.array([label]))
        )
        masks, _ = confident(engine.step(Frame(frame.image)))
        ious = mask_iou(torch.from_numpy(obj[None]), torch.from_numpy(masks)) if len(masks) else torch.zeros(1)
        found[label] = float(ious.max())
    assert found[True] >= 0.7, f"positive box: best mask IoU with the boxed object {found[True]:.2f}"
    assert found[False] < 0.3, f"negative box: a detection on the boxed object (IoU {found[False]:.2f})"
