"""What an exemplar box does for a model, without a phrase (SAM 3's visual prompt): fresh engines (detection only)
on frames of make-bag seeds 0-2; on each frame where a target concept shows at least two objects (>= 200 px),
one box on the largest of them.

- positive: the share of the boxed objects found (best confident mask IoU >= 0.5), the share of the concept's
  *other* objects found (the point of an exemplar: find the rest of its kind), and confident detections on
  objects of other concepts or on nothing (IoU < 0.5 with every object of the concept);
- negative (the same box marked negative, alone): confident detections of any kind (should be none).

    python bench/toy_exemplars.py MODEL [OUT.json]     MODEL: toy or a trained directory
"""

import json
import sys

import numpy as np
import torch

from sam3_ros.engine import ConceptPrompt, Frame, load_engine
from sam3_ros.engine.mask_ops import masks_to_boxes
from sam3_ros.eval.metrics import best_iou
from sam3_ros.eval.synthetic import World, WorldConfig
from sam3_ros.settings import Settings

MIN_AREA = 200  # an object counts when it shows at least this many pixels
FOUND_IOU = 0.5


def confident_masks(engine, image: np.ndarray, boxes: np.ndarray, positive: bool) -> np.ndarray:
    """Confident (score >= 0.5) masks of a fresh engine prompted with ``boxes`` alone."""
    engine.set_prompt(ConceptPrompt(boxes=boxes, box_labels=np.full(len(boxes), positive)))
    engine.reset()
    out = engine.step(Frame(image))
    return np.asarray(out.masks).astype(bool)[np.asarray(out.scores) >= 0.5]


def measure(model: str) -> dict:
    engine = load_engine(Settings.default({"model": model, "devices": ["cpu"]}))
    boxed, others, wrong, negative, prompts = [], [], 0, 0, 0
    for seed in (0, 1, 2):
        world = World(WorldConfig(seed=seed))
        for t in range(0, 60, 6):
            frame = world.frame(t)
            for concept in world.config.concepts:
                keep = [c == concept and m.sum() >= MIN_AREA for c, m in zip(frame.concepts, frame.masks)]
                objects = frame.masks[keep]
                if len(objects) < 2:
                    continue
                order = np.argsort(-objects.reshape(len(objects), -1).sum(1))
                box = masks_to_boxes(torch.from_numpy(objects[order[:1]])).numpy()
                masks = confident_masks(engine, frame.image, box, positive=True)
                found = best_iou(objects[order], masks) >= FOUND_IOU
                boxed.append(bool(found[0]))
                others += found[1:].tolist()
                on_concept = best_iou(masks, frame.masks[[c == concept for c in frame.concepts]]) >= FOUND_IOU
                wrong += int((~on_concept).sum())
                negative += len(confident_masks(engine, frame.image, box, positive=False))
                prompts += 1
    return {
        "model": model,
        "prompts": prompts,
        "boxed_object_found": float(np.mean(boxed)),
        "other_objects_found": float(np.mean(others)),
        "other_objects": len(others),
        "wrong_detections_per_prompt": wrong / prompts,
        "negative_box_detections_per_prompt": negative / prompts,
    }


if __name__ == "__main__":
    result = measure(sys.argv[1] if len(sys.argv) > 1 else "toy")
    print(json.dumps(result, indent=1))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
