"""Where a model's detections stand per object, before tracking: fresh engines (detection only) on frames of
make-bag seeds 0-2, each target concept prompted alone; for every visible object of it (>= 50 px), the best mask
IoU among confident detections (score >= 0.5) and among all detections (thresholds 0).

    python bench/toy_recall.py MODEL        MODEL: toy or a trained directory

Prints the shares of objects found at IoU 0.5/0.75/0.9 and the median best IoU.
"""

import sys

import numpy as np

from sam3_ros.engine import ConceptPrompt, Frame, load_engine
from sam3_ros.eval.metrics import best_iou
from sam3_ros.eval.synthetic import World, WorldConfig
from sam3_ros.settings import Settings


def main(model: str) -> None:
    settings = {"model": model, "devices": ["cpu"], "detection.score_threshold": 0.0}
    engine = load_engine(Settings.default({**settings, "detection.new_object_threshold": 0.0}))
    confident_best, any_best, confident_count = [], [], []
    for seed in (0, 1, 2):
        world = World(WorldConfig(seed=seed))
        for t in range(0, 60, 8):
            frame = world.frame(t)
            for concept in world.config.concepts:
                engine.set_prompt(ConceptPrompt(phrases=[concept]))
                engine.reset()  # every instance is a detection of this frame
                out = engine.step(Frame(frame.image, stamp_ns=t))
                masks, scores = np.asarray(out.masks).astype(bool), np.asarray(out.scores)
                gt = frame.masks[[c == concept and m.sum() >= 50 for c, m in zip(frame.concepts, frame.masks)]]
                if not len(gt):
                    continue
                confident = scores >= 0.5
                confident_best += list(best_iou(gt, masks[confident]))
                any_best += list(best_iou(gt, masks))
                confident_count.append(int(confident.sum()) / len(gt))
    confident_best, any_best = np.array(confident_best), np.array(any_best)
    print(f"{model}: {len(any_best)} visible objects")
    for threshold in (0.5, 0.75, 0.9):
        print(
            f"  found at IoU >= {threshold}: confident {np.mean(confident_best >= threshold):.2f}, "
            f"any score {np.mean(any_best >= threshold):.2f}"
        )
    print(f"  median best IoU: confident {np.median(confident_best):.3f}, any score {np.median(any_best):.3f}")
    print(f"  confident detections per object: {np.mean(confident_count):.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "toy")
