"""Whether a model's tracker says when an object is gone: held-out training-style clips of 8 frames (a generator
seed training never uses), half of them showing an object that goes away (out of view, covered, or gone from the
world). The objects start from their true first-frame masks and are tracked with the engine's tracker code.

    python bench/toy_tracker.py MODEL [CLIPS]        MODEL: toy or a trained directory

Prints, over the tracked frames: the share of frames where the tracker's object score says "present" for an
object that is gone (its mask then drifts onto whatever is near, a false detection in the benchmark), the share
where it says "absent" for a visible object, and the median mask IoU on frames where the object is visible and
said present.
"""

import sys

import numpy as np
import torch

from sam3_ros.engine.loading import load_model
from sam3_ros.engine.mask_ops import logits_to_masks
from sam3_ros.kernels.ops import mask_iou
from sam3_ros.training.data import tracker_clip
from sam3_ros.training.tracker import propagate_clip

PROBE_SEED = 777


@torch.no_grad()
def main(model: str, clips: int) -> None:
    loaded = load_model(model)
    rng = np.random.default_rng(PROBE_SEED)
    gone_present = gone = absent_visible = visible_total = 0
    ious = []
    for _ in range(clips):
        clip = tracker_clip(rng, 8, 6, vanishing=0.5)
        for t, out in propagate_clip(loaded.model, clip, torch.device("cpu")):
            present = (out["object_score_logits"][:, 0] > 0).numpy()
            visible = clip.masks[t].reshape(len(present), -1).any(1)
            gone_present += int((present & ~visible).sum())
            gone += int((~visible).sum())
            absent_visible += int((~present & visible).sum())
            visible_total += int(visible.sum())
            masks = logits_to_masks(out["mask_logits"][:, 0], clip.masks.shape[-2:])
            own = torch.diagonal(mask_iou(masks, torch.from_numpy(clip.masks[t]))).numpy()  # each with its truth
            ious += own[visible & present].tolist()
    print(f"{model}: {clips} clips")
    print(f"  gone object said present: {gone_present / max(gone, 1):.3f} of {gone} frames")
    print(f"  visible object said absent: {absent_visible / max(visible_total, 1):.3f} of {visible_total} frames")
    print(f"  median mask IoU, visible and said present: {np.median(ious):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "toy", int(sys.argv[2]) if len(sys.argv) > 2 else 24)
